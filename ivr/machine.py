"""The keypad menu as a state machine: a call's state and one caller input in, the next step out.

Nothing here touches Redis, Flask or the file system, so every path a caller can take is a
plain function call in the tests. The caller's journey:

    ring -> emergency line, greeting, menu (Gather)
    menu:      1-5 -> confirm | 9 -> voicemail | * -> menu again
               0 (offered to an unknown caller) -> greeting and menu in Mongolian
               wrong key -> "wrong key" + menu; after 3 in a row -> voicemail
               silence -> "did not hear" + menu, twice; the third time -> voicemail
    confirm:   1 -> ticket (known caller) | name recording (unknown caller) | 2 -> menu
               silence three times -> the choice is taken as confirmed
    name:      Record -> ticket with the recording (or without, when nothing was said)
    voicemail: Record -> "voicemail" ticket; nothing said -> "callback" ticket
    ticket     -> code read digit by digit, twice -> goodbye -> hang up

A step that opens a ticket carries a `TicketIntent`; whoever runs the machine opens the ticket
and asks `opened()` for the read-back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

# The keypad map of CONTRACT.md (kept here so ivr needs nothing from the gateway).
MENU: Mapping[str, str] = {"1": "medicine", "2": "food", "3": "doctor", "4": "vaccination",
                           "5": "utilities", "9": "voicemail"}
CATEGORIES = tuple(c for c in MENU.values() if c != "voicemail")
# On the menu, a caller not in the ledger may switch to the language offered (Mongolian) with
# this key: it is no menu choice and not the repeat key, so it never clashes with the menu.
OFFER_KEY = "0"
KEYS = frozenset("0123456789*#")

GATHER_TIMEOUT = 10      # seconds to wait for a key: elderly callers are not hurried
RECORD_SILENCE = 8       # seconds of silence that end a recording (people pause to think)
NAME_MAX = 60            # the name-and-address recording of an unknown caller
VOICEMAIL_MAX = 120      # a spoken message
MAX_SILENCES = 2         # re-prompts after silence before moving on
MAX_WRONG = 3            # wrong keys in a row before the caller is offered voicemail

Stage = Literal["menu", "confirm", "name", "voicemail", "done",
                "pin", "pick", "say", "check"]  # the last four: recording by phone (ivr.studio)
STUDIO_KEY = "#"  # on the menu, for a caller who may record prompts: the recording menu
PIN_DIGITS = 6


@dataclass(frozen=True)
class Call:
    """Everything the menu remembers between two webhook requests of one call."""

    caller: str = ""          # E.164, or "" when the number is hidden or unreadable
    known: bool = False       # in the registry: the ticket goes to their grid
    village: str = ""         # the caller's village, named in the greeting
    mobile: bool = False      # can receive the code by SMS
    language: str = "zh"
    stage: Stage = "menu"
    category: str = ""
    silences: int = 0
    wrong: int = 0
    started: float = 0.0
    step: int = 1             # the step number the next request will carry
    code: str = ""
    offer: str = ""           # a language offered with OFFER_KEY on the menu (unknown callers)
    recorder: bool = False    # the number of an account that may record prompts (STUDIO_KEY)
    take_language: str = ""   # recording by phone: the language being recorded
    take: int = 0             # ... the prompt being recorded (its place in the list)
    take_url: str = ""        # ... the recording just made, to listen to

    def to_dict(self) -> dict[str, str | int | float | bool]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Call:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})  # type: ignore[arg-type]


# --- what the caller did -------------------------------------------------------------------

@dataclass(frozen=True)
class Key:
    """One key pressed: 0-9, * or #."""

    key: str


@dataclass(frozen=True)
class Silence:
    """The Gather timed out with no key (Twilio followed the Redirect)."""


@dataclass(frozen=True)
class Garbage:
    """Input that no phone keypad produces (e.g. Digits=abc): apologise and repeat."""


@dataclass(frozen=True)
class Recorded:
    """A <Record> finished with audio."""

    url: str


@dataclass(frozen=True)
class NothingRecorded:
    """A <Record> heard nothing (Twilio moved on to the Redirect after it)."""


Event = Key | Silence | Garbage | Recorded | NothingRecorded


def event_of(digits: str | None, *, recording_url: str | None = None,
             recording: bool = False, count: int = 1) -> Event:
    """Turn raw webhook values into an event; anything a keypad cannot send is Garbage.
    `count`: how many keys the Gather asked for (a PIN's digits are one Key)."""
    if recording:
        url = (recording_url or "").strip()
        return Recorded(url) if url.startswith(("http://", "https://")) and len(url) < 500 \
            else NothingRecorded()
    if digits is None or digits == "":
        return Silence()
    if len(digits) == count and all(d in KEYS for d in digits):
        return Key(digits)
    return Garbage()


# --- what the caller hears next ------------------------------------------------------------

@dataclass(frozen=True)
class Prompt:
    """One spoken prompt: a template in templates/voice/<lang>/<name>.txt.

    `audio` names the recording that may replace it (templates/audio/...); None when the
    words vary so that no recording can stand in. `local` recordings are looked up only in
    the caller's village folder (e.g. a greeting that names the village). `language`, when
    set, is the language it is played in whatever the caller's (an offer of another language).
    """

    name: str
    context: Mapping[str, str] = field(default_factory=dict)
    audio: str | None = ""
    local: bool = False
    language: str = ""
    play: str = ""  # a recording to play as it is (one just made, heard back), not a prompt's

    @property
    def audio_key(self) -> str | None:
        return self.name if self.audio == "" else self.audio


@dataclass(frozen=True)
class Gather:
    """Wait for `digits` keys (one: a menu choice); `path` is the action, and the Redirect
    after it, for silence."""

    path: str
    timeout: int = GATHER_TIMEOUT
    digits: int = 1


@dataclass(frozen=True)
class Record:
    """Beep and record; the action gets the recording, the Redirect after it gets silence."""

    path: str
    max_length: int
    callback: str = "/twilio/voice/recording"
    timeout: int = RECORD_SILENCE


@dataclass(frozen=True)
class Hangup:
    pass


@dataclass(frozen=True)
class TicketIntent:
    """Open a ticket for this call; `recording_url` may be empty.

    `read_back` is False when the call is being ended (time is up): the caller hears a short
    goodbye instead of the code, which reaches a mobile by SMS.
    """

    category: str
    recording_url: str = ""
    read_back: bool = True


@dataclass(frozen=True)
class Step:
    """The answer to one webhook request.

    `intro` is spoken before the Gather (it cannot be skipped with a key); `prompts` are
    spoken inside the Gather, or before the Record or Hangup.
    """

    call: Call
    prompts: tuple[Prompt, ...] = ()
    then: Gather | Record | Hangup | None = None
    intro: tuple[Prompt, ...] = ()
    ticket: TicketIntent | None = None
    keep: KeepIntent | None = None


@dataclass(frozen=True)
class KeepIntent:
    """Keep the recording at `url` as the prompt `name` in `language` (recording by phone)."""

    name: str
    language: str
    url: str


def path_of(stage: Stage) -> str:
    return f"/twilio/voice/{stage}"


# --- the machine ---------------------------------------------------------------------------

def start(caller: str, *, known: bool, village: str, mobile: bool, language: str,
          now: float, offer: str = "") -> Step:
    """The call is answered: emergency line first, then the greeting, then the menu.

    With `offer` (a language with its own greeting, for a caller not in the ledger), the offer
    of that language is played in it right after the emergency line, inside the menu's Gather,
    so OFFER_KEY can be pressed at once.
    """
    call = Call(caller=caller, known=known, village=village, mobile=mobile, language=language,
                started=now, offer=offer)
    greeting = Prompt("greeting", {"place": village if known else ""}, local=known)
    if offer:
        return Step(call, (Prompt("language_offer", language=offer), greeting, _menu()),
                    Gather(path_of("menu")), intro=(Prompt("emergency"),))
    return Step(call, (_menu(),), Gather(path_of("menu")),
                intro=(Prompt("emergency"), greeting))


def advance(call: Call, event: Event, *, now: float, max_seconds: float) -> Step:
    """The next step after `event`; the returned call carries the next step number."""
    call = replace(call, step=call.step + 1)
    if call.stage == "done":
        return Step(call, (Prompt("goodbye"),), Hangup())
    if call.stage in ("menu", "confirm") and now - call.started > max_seconds:
        # Too long on the menu: hang up kindly, and let a volunteer call back.
        return Step(call, ticket=TicketIntent("callback", read_back=False))
    if call.stage == "menu":
        return _on_menu(call, event)
    if call.stage == "confirm":
        return _on_confirm(call, event)
    if call.stage == "name":
        if isinstance(event, Recorded):
            return Step(call, ticket=TicketIntent(call.category, event.url))
        return Step(call, ticket=TicketIntent(call.category))
    # voicemail
    if isinstance(event, Recorded):
        return Step(call, ticket=TicketIntent("voicemail", event.url))
    return Step(call, ticket=TicketIntent("callback"))


def opened(call: Call, intent: TicketIntent, code: str, *, texted: bool) -> Step:
    """The ticket exists: read its code twice, digit by digit, then goodbye and hang up."""
    done = replace(call, stage="done", category=intent.category, code=code)
    texted_note = (Prompt("code_texted"),) if texted else ()
    if not intent.read_back:
        return Step(done, (Prompt("time_up"), *texted_note, Prompt("goodbye")), Hangup())
    digits = tuple(Prompt("digit", {"d": d}, audio=f"digit_{d}") for d in code if d.isdigit())
    received = Prompt("received", {"category": intent.category},
                      audio=f"received_{intent.category}")
    prompts = (received, Prompt("code_is"), *digits, Prompt("code_again"), *digits)
    return Step(done, (*prompts, *texted_note, Prompt("goodbye")), Hangup())


def _menu() -> Prompt:
    return Prompt("menu")


def _confirm(category: str) -> Prompt:
    return Prompt("confirm", {"category": category}, audio=f"confirm_{category}")


def _to_voicemail(call: Call, why: tuple[Prompt, ...] = ()) -> Step:
    call = replace(call, stage="voicemail", category="voicemail", silences=0, wrong=0)
    return Step(call, (*why, Prompt("voicemail")), Record(path_of("voicemail"), VOICEMAIL_MAX))


def _on_menu(call: Call, event: Event) -> Step:
    menu = Gather(path_of("menu"))
    if isinstance(event, Key) and event.key in MENU:
        if MENU[event.key] == "voicemail":
            return _to_voicemail(call)
        category = MENU[event.key]
        call = replace(call, stage="confirm", category=category, silences=0, wrong=0)
        return Step(call, (_confirm(category),), Gather(path_of("confirm")))
    if isinstance(event, Key) and event.key == "*":
        return Step(replace(call, silences=0, wrong=0), (_menu(),), menu)
    if isinstance(event, Key) and event.key == STUDIO_KEY and call.recorder:
        # The recording menu (ivr.studio) opens with the PIN: caller ID can be forged.
        call = replace(call, stage="pin", silences=0, wrong=0)
        return Step(call, (Prompt("studio_pin", audio=None),),
                    Gather(path_of("pin"), digits=PIN_DIGITS))
    if isinstance(event, Key) and event.key == OFFER_KEY and call.offer:
        call = replace(call, language=call.offer, offer="", silences=0, wrong=0)
        return Step(call, (Prompt("greeting", {"place": ""}), _menu()), menu)
    if isinstance(event, Silence):
        if call.silences >= MAX_SILENCES:
            return _to_voicemail(call, (Prompt("no_key"),))
        return Step(replace(call, silences=call.silences + 1), (Prompt("no_key"), _menu()), menu)
    # A wrong key, or something no keypad sends.
    sorry = Prompt("wrong_key") if isinstance(event, Key) else Prompt("sorry")
    if call.wrong + 1 >= MAX_WRONG:
        return _to_voicemail(call, (sorry,))
    return Step(replace(call, wrong=call.wrong + 1), (sorry, _menu()), menu)


def _on_confirm(call: Call, event: Event) -> Step:
    again = Gather(path_of("confirm"))
    if (isinstance(event, Key) and event.key == "1") or (
            isinstance(event, Silence) and call.silences >= MAX_SILENCES):
        # Silence after hearing the choice three times counts as yes: the caller did choose.
        if call.known:
            return Step(call, ticket=TicketIntent(call.category))
        call = replace(call, stage="name", silences=0, wrong=0)
        return Step(call, (Prompt("ask_name", {"number": "yes" if call.caller else ""}),),
                    Record(path_of("name"), NAME_MAX))
    if isinstance(event, Key) and event.key == "2":
        call = replace(call, stage="menu", category="", silences=0, wrong=0)
        return Step(call, (_menu(),), Gather(path_of("menu")))
    if isinstance(event, Key) and event.key == "*":
        return Step(replace(call, silences=0, wrong=0), (_confirm(call.category),), again)
    if isinstance(event, Silence):
        return Step(replace(call, silences=call.silences + 1),
                    (Prompt("no_key"), _confirm(call.category)), again)
    sorry = Prompt("wrong_key") if isinstance(event, Key) else Prompt("sorry")
    return Step(replace(call, wrong=call.wrong + 1), (sorry, _confirm(call.category)), again)
