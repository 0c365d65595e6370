"""Recording prompts by phone: a head or admin, their PIN checked, records their set one prompt after another.

The caller pressed ivr.machine.STUDIO_KEY on the menu and was asked for their PIN:

    pin:   the PIN right (checked by whoever runs the machine: `Pin`) -> pick | wrong -> again;
           the third wrong one, or silence three times -> goodbye
    pick:  1 Mandarin, 2 Mongolian, 3 English -> say (the first prompt)
    say:   the prompt's number and its Mandarin words, a beep, Record -> check |
           nothing heard -> say again (twice), then the next prompt
    check: the recording played back; 1 keeps it (KeepIntent) and 2 records it again, 3 skips
           to the next, # ends; after the last prompt -> done

Like ivr.machine, nothing here touches Redis, Flask or files: the prompts to record (their
names and words) are given by the caller of these functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from ivr.machine import (
    MAX_SILENCES,
    PIN_DIGITS,
    Call,
    Event,
    Gather,
    Hangup,
    KeepIntent,
    Key,
    NothingRecorded,
    Prompt,
    Record,
    Recorded,
    Silence,
    Step,
    path_of,
)

LANGUAGES = {"1": "zh", "2": "mn", "3": "en"}  # the keys of the language choice
PIN_TRIES = 3       # wrong PINs on one call before it ends (accounts also count them by day)
TAKE_MAX = 60       # seconds: a prompt longer than a minute is not a prompt
TAKE_SILENCE = 4    # seconds of silence that end a take (the words are known: no thinking)
END_KEY = "#"


@dataclass(frozen=True)
class Pin:
    """The PIN the caller keyed in, as checked: right or wrong."""

    ok: bool


Todo = Sequence[tuple[str, str]]  # the prompts to record, in order: (name, Mandarin words)


def _words(call: Call, todo: Todo) -> Prompt:
    words = todo[call.take][1]
    return Prompt("studio_say", {"n": str(call.take + 1), "total": str(len(todo)), "words": words},
                  audio=None)


def _say(call: Call, todo: Todo, before: tuple[Prompt, ...] = ()) -> Step:
    call = replace(call, stage="say", take_url="", silences=0, wrong=0)
    return Step(call, (*before, _words(call, todo)),
                Record(path_of("say"), TAKE_MAX, timeout=TAKE_SILENCE))


def _check(call: Call, before: tuple[Prompt, ...] = ()) -> Step:
    return Step(call, (*before, Prompt("studio_heard", audio=None), Prompt("", play=call.take_url),
                       Prompt("studio_check", audio=None)), Gather(path_of("check")))


def _done(call: Call, before: tuple[Prompt, ...] = ()) -> Step:
    return Step(replace(call, stage="done"),
                (*before, Prompt("studio_done", audio=None), Prompt("goodbye")), Hangup())


def _next(call: Call, todo: Todo, before: tuple[Prompt, ...] = ()) -> Step:
    if call.take + 1 >= len(todo):
        return _done(call, before)
    return _say(replace(call, take=call.take + 1), todo, before)


def advance(call: Call, event: Event | Pin, todo: Todo) -> Step:
    """The next step of the recording menu after `event` (the call's step number moved on)."""
    if call.stage == "pin":
        return _on_pin(call, event)
    if call.stage == "pick":
        return _on_pick(call, event, todo)
    if not todo:
        return _done(call)
    if call.stage == "say":
        if isinstance(event, Recorded):
            return _check(replace(call, stage="check", take_url=event.url, silences=0))
        if call.silences >= MAX_SILENCES - 1:
            return _next(call, todo, (Prompt("studio_nothing", audio=None),))
        step = _say(call, todo, (Prompt("studio_nothing", audio=None),))
        return replace(step, call=replace(step.call, silences=call.silences + 1))
    return _on_check(call, event, todo)


def _on_pin(call: Call, event: Event | Pin) -> Step:
    again = Gather(path_of("pin"), digits=PIN_DIGITS)
    if isinstance(event, Pin) and event.ok:
        call = replace(call, stage="pick", silences=0, wrong=0)
        return Step(call, (Prompt("studio_pick", audio=None),), Gather(path_of("pick")))
    if isinstance(event, Silence):
        if call.silences >= MAX_SILENCES:
            return _done(call)
        return Step(replace(call, silences=call.silences + 1),
                    (Prompt("no_key"), Prompt("studio_pin", audio=None)), again)
    if call.wrong + 1 >= PIN_TRIES:
        return Step(replace(call, stage="done"),
                    (Prompt("studio_pin_wrong", audio=None), Prompt("goodbye")), Hangup())
    return Step(replace(call, wrong=call.wrong + 1),
                (Prompt("studio_pin_wrong", audio=None), Prompt("studio_pin", audio=None)), again)


def _on_pick(call: Call, event: Event | Pin, todo: Todo) -> Step:
    if isinstance(event, Key) and event.key in LANGUAGES:
        if not todo:
            return _done(call)
        return _say(replace(call, take_language=LANGUAGES[event.key], take=0), todo)
    if isinstance(event, Silence) and call.silences >= MAX_SILENCES:
        return _done(call)
    sorry = Prompt("no_key") if isinstance(event, Silence) else Prompt("wrong_key")
    return Step(replace(call, silences=call.silences + isinstance(event, Silence)),
                (sorry, Prompt("studio_pick", audio=None)), Gather(path_of("pick")))


def _on_check(call: Call, event: Event | Pin, todo: Todo) -> Step:
    if isinstance(event, Key) and event.key == "1":
        name = todo[call.take][0]
        kept = _next(call, todo, (Prompt("studio_kept", audio=None),))
        return replace(kept, keep=KeepIntent(name, call.take_language, call.take_url))
    if isinstance(event, Key) and event.key == "2":
        return _say(call, todo)
    if isinstance(event, Key) and event.key == "3":
        return _next(call, todo)
    if isinstance(event, Key) and event.key == END_KEY:
        return _done(call)
    if isinstance(event, Silence | NothingRecorded):
        if call.silences >= MAX_SILENCES:
            return _done(call)  # an unconfirmed take is not kept
        return _check(replace(call, silences=call.silences + 1), (Prompt("no_key"),))
    return _check(call, (Prompt("wrong_key"),))
