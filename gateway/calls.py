"""Voice calls between webhook steps: state in Redis, each step answered once, one ticket per call.

The menu itself is `ivr` (pure). Here: the call's state under `KEYS.call(sid)` (a hash with a
TTL: ``state`` JSON, ``twiml:<n>`` the answer to step n, ``claim:<n>``, ``ticket``, ``texted``,
``recording``; step 0 stores nothing, step 1 rebuilds its state), the de-dup of a step
delivered twice (same CallSid and step: the stored answer is returned, nothing changes),
opening the ticket exactly once per call, the recording callback, and the missed-call ticket
from the call's status callback.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import lru_cache

import ivr
from gateway import accounts, clock, jobs, messages, phones, prompts, texts, tickets
from gateway.context import Hotline
from gateway.phones import is_mobile, mask, try_normalise
from gateway.settings import Settings
from gateway.store import KEYS, Redis, locked
from ivr import studio
from ivr.machine import PIN_DIGITS, STUDIO_KEY, Call, Hangup, Key, Prompt, Step, TicketIntent
from ivr.twiml import Speaker, Spoken

log = logging.getLogger(__name__)

STUDIO = ("pin", "pick", "say", "check")  # recording prompts by phone (ivr.studio)
RECORDING = ("name", "voicemail", "say")  # stages whose request carries a <Record>'s result
CALL_TTL = 2 * 86400        # recording and status callbacks may come minutes after the call
MAX_CALL_SECONDS = 600      # on the menu longer than this, the call ends and a volunteer calls back
WAIT_FOR_PEER = 3.0         # seconds a duplicate request waits for the first one's answer
STAGES = ("menu", "confirm", "name", "voicemail", *STUDIO)
FINAL_STATUSES = ("completed", "busy", "no-answer", "failed", "canceled")
_SID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


# --- the webhook steps ---------------------------------------------------------------------

def answer(hl: Hotline, form: Mapping[str, str]) -> str:
    """POST /twilio/voice: the call is answered (step 0).

    Step 0 changes nothing: its answer is a function of the caller's registry row, so it is
    neither claimed nor stored; step 1 rebuilds the same starting state (`_first`). The
    caller is looked up in the process's copy of the ledger: no Redis round trip at all.
    """
    call, raw_from = _first(hl, form)
    xml = _first_twiml(hl.settings, call, sorry=not raw_from)
    sid = _sid(form)
    if sid is not None and log.isEnabledFor(logging.INFO):
        log.info("call %s from %s: answered (%s)", sid[-6:], mask(call.caller),
                 "known" if call.known else "unknown")
    return xml


def _first(hl: Hotline, form: Mapping[str, str]) -> tuple[Call, str]:
    """The call as it starts (the caller looked up in the registry), and the raw From."""
    raw_from = (form.get("From") or "").strip()
    caller, mobile = _caller(raw_from[:40], hl.settings.default_region) if raw_from else ("", False)
    person = hl.ledger.person(caller) if caller else None
    language = person.language if person and person.language in prompts.LANGUAGES \
        else hl.settings.language
    first = ivr.start(caller, known=person is not None, village=person.village if person else "",
                      mobile=mobile, language=language, now=clock.timestamp(),
                      offer=_offer(hl.settings, language) if person is None else "")
    return first.call, raw_from


OFFERED = "mn"  # the language a caller not in the ledger may choose with ivr's OFFER_KEY


def _offer(settings: Settings, language: str) -> str:
    """Mongolian is offered where the hotline has its greeting recorded in Mongolian."""
    if language == OFFERED or prompts.find(settings, OFFERED, "greeting") is None:
        return ""
    return OFFERED


FIRST_TWIML_SECONDS = 10.0  # how long a rendered first answer is reused (template edits show soon)
_first_cache: dict[tuple[object, ...], tuple[float, str]] = {}


def _first_twiml(settings: Settings, call: Call, *, sorry: bool) -> str:
    """The TwiML of step 0, which depends only on the caller's language, village and known-ness."""
    key = (settings.templates_dir, settings.data_dir, prompts.stamp(settings), settings.public_url,
           settings.voice, settings.language, call.language, call.village if call.known else "",
           call.known, call.offer, sorry)
    now = time.monotonic()
    hit = _first_cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    first = ivr.start(call.caller, known=call.known, village=call.village, mobile=call.mobile,
                      language=call.language, now=call.started, offer=call.offer)
    if sorry:
        # No caller number at all is not something Twilio sends: apologise, then the menu.
        first = Step(first.call, (Prompt("sorry"), *first.prompts), first.then,
                     intro=first.intro[:1])
    xml = _render(settings, first)
    if len(_first_cache) > 1024:
        _first_cache.clear()
    _first_cache[key] = (now + FIRST_TWIML_SECONDS, xml)
    return xml


@lru_cache(maxsize=4096)
def _caller(raw: str, region: str) -> tuple[str, bool]:
    """(E.164 or "", can receive SMS) for a From value; parsing numbers is slow, so kept."""
    return phones.caller(raw, region) or ("", False)


def step(hl: Hotline, stage: str, step_no: str, form: Mapping[str, str]) -> str:
    """POST /twilio/voice/<stage>?step=n: the caller pressed a key, was silent, or recorded."""
    sid = _sid(form)
    if sid is None:
        return answer(hl, form)
    n = int(step_no) if step_no.isdigit() and len(step_no) < 6 else -1
    key = KEYS.call(sid)
    stored, raw = hl.r.hmget(key, f"twiml:{n}", "state")
    if stored:
        return str(stored)
    if raw is not None:
        call = Call.from_dict(json.loads(raw))
    elif n == 1 and stage == "menu":
        call, _ = _first(hl, form)  # the first key of the call: step 0 stored nothing
    else:  # state expired or never made: start the menu again rather than drop them
        return answer(hl, form)
    if n != call.step or stage != call.stage or stage not in STAGES:
        return _latest(hl, sid, call)  # a stale or stray request changes nothing
    event: ivr.Event | studio.Pin
    if stage in RECORDING:
        event = ivr.event_of(None, recording=True, recording_url=form.get("RecordingUrl"))
    elif stage == "pin":
        event = ivr.event_of(form.get("Digits"), count=PIN_DIGITS)
    else:
        event = ivr.event_of(form.get("Digits"))
    if stage == "menu" and event == Key(STUDIO_KEY) and call.caller:
        call = replace(call, recorder=accounts.recorder(hl, call.caller) is not None)

    def compute() -> Step:
        if stage in STUDIO:
            result = _studio(hl, replace(call, step=call.step + 1), event)
        else:
            assert not isinstance(event, studio.Pin)
            result = ivr.advance(call, event, now=clock.timestamp(), max_seconds=MAX_CALL_SECONDS)
        log.info("call %s: step %s %s %s -> %s", sid[-6:], n, stage, type(event).__name__,
                 result.call.stage)
        if result.ticket is not None:
            code, texted = open_call_ticket(hl, sid, result.call.caller, result.ticket)
            return ivr.opened(result.call, result.ticket, code, texted=texted)
        return result

    return _once(hl, sid, n, compute)


def _studio(hl: Hotline, call: Call, event: ivr.Event | studio.Pin) -> Step:
    """A step of recording by phone: the PIN checked here, a kept take stored by a worker."""
    user = accounts.recorder(hl, call.caller) if call.caller else None
    if user is None:  # the number stopped being a recorder's mid-call: nothing to record
        return Step(replace(call, stage="done"), (Prompt("goodbye"),), Hangup())
    if call.stage == "pin" and isinstance(event, Key):
        event = studio.Pin(accounts.check_pin(hl, user, event.key))
    village = "" if user.is_admin else user.village
    result = studio.advance(call, event, _todo(hl.settings, village))
    if result.keep is not None:
        jobs.keep_take(hl, result.keep.url, result.keep.name, result.keep.language, village,
                       call.caller)
        log.info("recording by phone: %s keeps %s (%s) for %s", user.name, result.keep.name,
                 result.keep.language, village or "the hotline")
    return result


def _todo(settings: Settings, village: str) -> list[tuple[str, str]]:
    """The prompts a recorder goes through, in order: the greeting and the menu first; the
    offer of Mongolian to strangers only in the hotline-wide set (it is heard before any
    village is known)."""
    first = ["greeting", "menu"]
    rest = [e.name for e in prompts.CATALOGUE if e.name not in first
            and not (village and e.name == "language_offer")]
    return [(name, prompts.words(settings, name, village)) for name in first + rest]


def recording(hl: Hotline, form: Mapping[str, str]) -> None:
    """POST /twilio/voice/recording: the recording is ready; attach it to the call's ticket."""
    sid = _sid(form)
    url = (form.get("RecordingUrl") or "").strip()
    status = (form.get("RecordingStatus") or "completed").strip().lower()
    if sid is None or status != "completed" or not _is_url(url):
        return
    key = KEYS.call(sid)
    with hl.r.pipeline(transaction=True) as pipe:
        pipe.hset(key, "recording", url)
        pipe.expire(key, CALL_TTL)
        pipe.execute()
    code = hl.r.hget(key, "ticket")
    if code and code.isdigit():
        _attach(hl, code, url)


def call_status(hl: Hotline, form: dict[str, str]) -> None:
    """The call's status callback: a caller who hung up before finishing gets a callback ticket.

    Idempotent: a call has at most one ticket, and a caller with an open ticket gets none.
    """
    sid = _sid(form)
    status = (form.get("CallStatus") or "").strip().lower()
    direction = (form.get("Direction") or "inbound").strip().lower()
    if sid is None or status not in FINAL_STATUSES or not direction.startswith("inbound"):
        return
    key = KEYS.call(sid)
    if hl.r.hget(key, "ticket"):
        return  # this call already made its ticket (or found one open)
    raw = hl.r.hget(key, "state")
    call = Call.from_dict(json.loads(raw)) if raw else None
    if call is not None:
        caller = call.caller
    else:
        raw_from = (form.get("From") or "").strip()[:40]
        caller = (try_normalise(raw_from, hl.settings.default_region) or "") if raw_from else ""
    if call is not None and (call.stage in STUDIO or call.take_language):
        return  # a recorder's call: nobody needs calling back
    recorded = hl.r.hget(key, "recording") or ""
    if call is not None and call.stage in ("name", "voicemail") and (recorded or caller):
        # Hung up while recording: the choice was made, so the ticket is theirs to have.
        if recorded or not tickets.open_ticket_of(hl, caller):
            open_call_ticket(hl, sid, caller, TicketIntent(call.category, recorded))
        return
    if not caller:
        return  # nobody to call back
    callback_ticket(hl, caller, sid=sid)


def callback_ticket(hl: Hotline, caller: str, *, sid: str = "") -> tuple[str, bool] | None:
    """The one call-back rule: the caller's open ticket, else a new "please call back" ticket
    offered to the team, its code texted to a mobile caller; (code, True if new).

    Both lines come here: a ring the modem hung up on (no `sid`: `hotline missed-call`) and a
    Twilio call that ended unfinished (`sid`). One ring of a caller at a time, whichever line
    it came in on: a modem ring (its own process) waits its turn; Twilio's callback gives up
    (None), another ring of the caller being handled right now.
    """
    with locked(hl.r, f"missed-call:{caller}", ttl=30, wait=0 if sid else 20,
                busy="skip" if sid else "raise") as held:
        if not held:
            return None
        existing = tickets.open_ticket_of(hl, caller)
        if existing is not None:
            if sid:
                hl.r.hsetnx(KEYS.call(sid), "ticket", f"open:{existing.code}")
                hl.r.expire(KEYS.call(sid), CALL_TTL)
            else:
                tickets.note(hl, existing.code, caller, "rang", "missed_call")
            log.info("missed call from %s: already has #%s", mask(caller), existing.code)
            return existing.code, False
        if sid:
            code, _ = open_call_ticket(hl, sid, caller, TicketIntent("callback"))
        else:
            ticket = tickets.open_ticket(hl, caller, "callback", "missed_call")
            _text_code(hl, ticket)
            code = ticket.code
    log.info("missed call from %s: callback ticket #%s", mask(caller), code)
    return code, True


def failure(settings: Settings) -> str:
    """What a caller hears when the gateway itself fails (e.g. Redis is down)."""
    call = Call(language=settings.language, stage="done")
    return _render(settings, Step(call, (Prompt("failure"),), Hangup()))


def spooled(settings: Settings) -> str:
    """What a caller hears while Redis is away: the call is noted and will be called back."""
    call = Call(language=settings.language, stage="done")
    return _render(settings, Step(call, (Prompt("spooled"),), Hangup()))


# --- one ticket per call -------------------------------------------------------------------

def open_call_ticket(hl: Hotline, sid: str, caller: str, intent: TicketIntent) -> tuple[str, bool]:
    """Open this call's ticket once (later callers get the same code); returns (code, texted)."""
    key = KEYS.call(sid)
    if hl.r.hsetnx(key, "ticket", "opening"):
        hl.r.expire(key, CALL_TTL)
        url = intent.recording_url or hl.r.hget(key, "recording") or ""
        try:
            ticket = tickets.open_ticket(hl, caller, intent.category, "voice", recording_url=url,
                                         call_sid=sid)
        except Exception:
            hl.r.hdel(key, "ticket")  # let Twilio's retry try again
            raise
        texted = _text_code(hl, ticket)
        hl.r.hset(key, mapping={"ticket": ticket.code, "texted": "1" if texted else ""})
        late = hl.r.hget(key, "recording")  # the recording callback may have come meanwhile
        if late and late != url:
            _attach(hl, ticket.code, late)
        return ticket.code, texted
    code = _wait_for(hl.r, key, "ticket", lambda v: v != "opening") or ""
    code = code.split(":", 1)[-1]
    if intent.recording_url and code.isdigit():
        _attach(hl, code, intent.recording_url)
    return code, hl.r.hget(key, "texted") == "1"


def _attach(hl: Hotline, code: str, url: str) -> None:
    ticket = tickets.get(hl, code)
    if ticket is not None and ticket.recording_url != url:
        tickets.set_recording(hl, code, url)
        log.info("ticket #%s: recording attached", code)


def _text_code(hl: Hotline, ticket: tickets.Ticket) -> bool:
    """A mobile caller also gets the code by SMS (a landline cannot)."""
    caller = ticket.caller
    if not caller or not is_mobile(caller) or messages.opted_out(hl, caller):
        return False
    body = texts.sms(hl.settings, "call_code", language=ticket.language or None,
                     village=ticket.village, ticket=ticket)
    messages.queue_sms(hl, caller, body, kind="call_code", ticket=ticket.code)
    return True


# --- answering each step once --------------------------------------------------------------

def _once(hl: Hotline, sid: str, n: int, compute: Callable[[], Step]) -> str:
    """Compute step n of the call once; a repeat of the same step gets the same TwiML."""
    key = KEYS.call(sid)
    if not hl.r.hsetnx(key, f"claim:{n}", "1"):
        stored = _wait_for(hl.r, key, f"twiml:{n}", bool)
        if stored:
            return stored
        raw = hl.r.hget(key, "state")
        return _latest(hl, sid, Call.from_dict(json.loads(raw)) if raw else Call())
    try:
        result = compute()
        xml = _render(hl.settings, result)
    except Exception:
        hl.r.hdel(key, f"claim:{n}")
        raise
    with hl.r.pipeline(transaction=True) as pipe:
        pipe.hset(key, mapping={"state": json.dumps(result.call.to_dict(), ensure_ascii=False),
                                f"twiml:{n}": xml})
        pipe.expire(key, CALL_TTL)
        pipe.execute()
    return xml


def _latest(hl: Hotline, sid: str, call: Call) -> str:
    """The last answer given on this call: what a stray request hears again."""
    for n in range(call.step - 1, -1, -1):
        stored = hl.r.hget(KEYS.call(sid), f"twiml:{n}")
        if stored:
            return str(stored)
    return _render(hl.settings, Step(call, (Prompt("goodbye"),), Hangup()))


def _wait_for(r: Redis, key: str, field: str, ready: Callable[[str], bool]
              ) -> str | None:
    """Poll a field another request is about to write (a duplicate delivery in flight)."""
    deadline = time.monotonic() + WAIT_FOR_PEER
    while True:
        value = r.hget(key, field)
        if value is not None and ready(value):
            return str(value)
        if time.monotonic() > deadline:
            return str(value) if value is not None else None
        time.sleep(0.05)


def _sid(form: Mapping[str, str]) -> str | None:
    sid = (form.get("CallSid") or "").strip()
    return sid if _SID.match(sid) else None


def _is_url(url: str) -> bool:
    return url.startswith(("http://", "https://")) and len(url) < 500


# --- words and recordings ------------------------------------------------------------------

def _render(settings: Settings, result: Step) -> str:
    call = result.call
    spoken = prompts.spoken_language(settings, call.language)
    return ivr.render(result, _speaker(settings, call.language, call.village if call.known else ""),
                      base_url=settings.public_url, language=spoken, voice=settings.voice)


def _speaker(settings: Settings, language: str, village: str) -> Speaker:
    """Each prompt as its recording in the caller's language (the village's, then the
    hotline's), else the fallback language's recording, else its words said in that language."""
    def speak(prompt: Prompt) -> Spoken:
        if prompt.play:
            return Spoken("", url=prompt.play)
        key = prompt.audio_key
        lang = prompt.language or language
        found = prompts.heard(settings, lang, key, village, local=prompt.local) if key else None
        if found is not None:
            return Spoken("", url=found.url(settings.public_url))
        return Spoken(texts.render(settings, "voice", prompt.name,
                                   language=prompts.spoken_language(settings, lang),
                                   village=village, **prompt.context))

    return speak
