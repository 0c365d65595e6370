"""TwiML as Twilio executes it, without SIP: parse a webhook's answer into verbs, sign the next request.

Pure functions only, so the interpreter is unit-testable; the SIP engine plays what these describe.
"""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from urllib.parse import urljoin

from twilio.request_validator import RequestValidator


@dataclass(frozen=True)
class Say:
    text: str
    language: str = "zh-CN"


@dataclass(frozen=True)
class Play:
    url: str


@dataclass(frozen=True)
class Pause:
    length: float = 1.0


@dataclass(frozen=True)
class Gather:
    action: str
    num_digits: int = 0
    timeout: float = 5.0
    finish_on_key: str = "#"
    prompts: tuple[Say | Play | Pause, ...] = field(default=())


@dataclass(frozen=True)
class Record:
    action: str
    max_length: float = 3600.0
    timeout: float = 5.0
    finish_on_key: str = "1234567890*#"
    status_callback: str = ""


@dataclass(frozen=True)
class Redirect:
    url: str


@dataclass(frozen=True)
class Hangup:
    pass


Verb = Say | Play | Pause | Gather | Record | Redirect | Hangup


def _num(value: str | None, default: float) -> float:
    try:
        return float(value) if value not in (None, "") else default
    except ValueError:
        return default


def _prompt(el: ET.Element) -> Say | Play | Pause | None:
    if el.tag == "Say":
        return Say("".join(el.itertext()).strip(), el.get("language", "zh-CN"))
    if el.tag == "Play":
        return Play((el.text or "").strip())
    if el.tag == "Pause":
        return Pause(_num(el.get("length"), 1.0))
    return None


class ForeignUrl(ValueError):
    """TwiML sent the call somewhere other than the hotline's own web: refused, not followed."""


def parse(document: str, current_url: str, within: str = "") -> list[Verb]:
    """The verbs of a <Response>, in order; a verb without action posts back to `current_url`.

    URLs are taken relative to `current_url`, as Twilio takes them. With `within` (the web's
    HOTLINE_PUBLIC_URL), a URL outside it raises ForeignUrl: the agent signs what it posts and
    posts the caller's number, so it never follows an answer to another host.
    """
    root = ET.fromstring(document)

    def url(value: str | None) -> str:
        resolved = urljoin(current_url, value.strip()) if value and value.strip() else current_url
        if within and not resolved.startswith(within.rstrip("/") + "/"):
            raise ForeignUrl(f"TwiML points outside {within}: {resolved[:80]}")
        return resolved

    def prompt(el: ET.Element) -> Say | Play | Pause | None:
        found = _prompt(el)
        if isinstance(found, Play):
            return Play(url(found.url)) if found.url else None  # nothing to play: skipped
        return found

    verbs: list[Verb] = []
    for el in root:
        spoken = prompt(el)
        if spoken is not None:
            verbs.append(spoken)
        elif el.tag == "Gather":
            nested = tuple(p for p in (prompt(c) for c in el) if p is not None)
            verbs.append(Gather(action=url(el.get("action")),
                                num_digits=int(_num(el.get("numDigits"), 0)),
                                timeout=_num(el.get("timeout"), 5.0),
                                finish_on_key=el.get("finishOnKey", "#"), prompts=nested))
        elif el.tag == "Record":
            callback = el.get("recordingStatusCallback", "")
            verbs.append(Record(action=url(el.get("action")),
                                max_length=_num(el.get("maxLength"), 3600.0),
                                timeout=_num(el.get("timeout"), 5.0),
                                finish_on_key=el.get("finishOnKey", "1234567890*#"),
                                status_callback=url(callback) if callback else ""))
        elif el.tag == "Redirect":
            verbs.append(Redirect(url(el.text)))
        elif el.tag == "Hangup":
            verbs.append(Hangup())
    return verbs


def new_call_sid() -> str:
    """A CallSid of Twilio's shape: CA and 32 hex digits."""
    return "CA" + secrets.token_hex(16)


def signature(token: str, url: str, form: dict[str, str]) -> str:
    """X-Twilio-Signature for a POST of `form` to `url`, exactly as Twilio computes it."""
    return str(RequestValidator(token).compute_signature(url, form))


class DigitCollector:
    """The keys a <Gather> takes: done at numDigits or finishOnKey (not included)."""

    def __init__(self, gather: Gather) -> None:
        self.gather = gather
        self.digits = ""
        self.done = False

    def key(self, digit: str) -> bool:
        """Take one key; True once the gather is complete."""
        if self.done:
            return True
        if digit and digit in self.gather.finish_on_key:
            self.done = True
        else:
            self.digits += digit
            if self.gather.num_digits and len(self.digits) >= self.gather.num_digits:
                self.done = True
        return self.done
