"""Plays Twilio's part against our own webhooks: signed requests in, TwiML read back as a caller hears it.

Every request is form-encoded and signed exactly as Twilio signs (HMAC-SHA1 over
HOTLINE_PUBLIC_URL + path + query, then the sorted form fields, keyed with the
webhook token), and goes through the whole app (its wall, signature check and
de-duplication) by way of Flask's test client, so a call or text that works in
the simulator works with Twilio.
"""

from __future__ import annotations

import secrets
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from typing import Any

from flask import Flask
from twilio.request_validator import RequestValidator

from gateway.settings import Settings

API_VERSION = "2010-04-01"
MAX_REDIRECTS = 8


class SimulatorError(Exception):
    """The app answered something Twilio would not accept (not TwiML, an error status, a foreign URL)."""


@dataclass
class Wait:
    """What the call waits for: a key (Gather) or a recording (Record); where to go on silence."""

    kind: str
    action: str
    num_digits: int = 0
    finish_on_key: str = ""
    callback: str = ""
    on_silence: str = ""


@dataclass
class Turn:
    """One stretch of a call: what was said or played, then what it waits for, or that it ended."""

    said: list[dict[str, str]] = field(default_factory=list)
    wait: Wait | None = None
    ended: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"said": self.said, "wait": asdict(self.wait) if self.wait else None,
                "ended": self.ended}


def new_sid(prefix: str) -> str:
    """A Twilio-shaped id: two letters and 32 hex digits."""
    return prefix + secrets.token_hex(16)


class Driver:
    """Sends signed webhook requests to `app` and reads its TwiML."""

    def __init__(self, app: Flask, settings: Settings, hotline_number: str) -> None:
        self.app = app
        self.settings = settings
        self.to = hotline_number
        self.account = settings.twilio_account_sid or "AC" + "0" * 32

    def url(self, target: str, base: str = "") -> str:
        """`target` made absolute as Twilio resolves it (relative to the current document)."""
        return urllib.parse.urljoin(base or self.settings.public_url + "/", target)

    def post(self, url: str, params: dict[str, str], method: str = "POST") -> tuple[int, str]:
        """Request `url` (under HOTLINE_PUBLIC_URL) as Twilio would; returns status and body."""
        public = self.settings.public_url
        if not url.startswith(public + "/"):
            raise SimulatorError(f"not an URL of this hotline: {url}")
        path = url[len(public):]
        validator = RequestValidator(self.settings.webhook_token())
        client = self.app.test_client()
        if method.upper() == "GET":
            joiner = "&" if "?" in path else "?"
            path = path + joiner + urllib.parse.urlencode(params)
            signature = validator.compute_signature(public + path, {})
            response = client.get(path, headers={"X-Twilio-Signature": signature})
        else:
            signature = validator.compute_signature(url, params)
            response = client.post(path, data=urllib.parse.urlencode(params),
                                   content_type="application/x-www-form-urlencoded",
                                   headers={"X-Twilio-Signature": signature})
        return response.status_code, response.get_data(as_text=True)

    # --- voice -------------------------------------------------------------------------------

    def call_params(self, sid: str, caller: str, status: str = "in-progress") -> dict[str, str]:
        return {"AccountSid": self.account, "ApiVersion": API_VERSION, "CallSid": sid,
                "CallStatus": status, "Direction": "inbound", "From": caller, "Caller": caller,
                "To": self.to, "Called": self.to}

    def voice(self, url: str, params: dict[str, str], method: str = "POST") -> Turn:
        """Request a voice URL and play its TwiML until it waits for the caller or ends."""
        turn = Turn()
        for _ in range(MAX_REDIRECTS):
            status, body = self.post(url, params, method)
            if status != 200:
                raise SimulatorError(f"{url} answered {status}")
            follow = self._play(_parse(body), url, turn)
            if follow is None:
                return turn
            url, method = follow
            # A Redirect carries the call's parameters but no input of the step before.
            params = {k: v for k, v in params.items() if not k.startswith(("Digits", "Recording"))}
        raise SimulatorError("too many redirects")

    def _play(self, verbs: ET.Element, url: str, turn: Turn) -> tuple[str, str] | None:
        """Read the verbs into `turn`; return the (url, method) of a Redirect to follow."""
        items = list(verbs)
        for i, verb in enumerate(items):
            tag = verb.tag
            if tag in ("Say", "Play"):
                turn.said.append(_spoken(verb, url, self))
            elif tag == "Gather":
                turn.said += [_spoken(v, url, self) for v in verb if v.tag in ("Say", "Play")]
                turn.wait = Wait(
                    kind="gather", action=self.url(verb.get("action") or url, url),
                    num_digits=int(verb.get("numDigits") or 0),
                    finish_on_key=verb.get("finishOnKey", "#"),
                    on_silence=_next_redirect(items[i + 1:], url, self))
                return None
            elif tag == "Record":
                callback = verb.get("recordingStatusCallback")
                turn.wait = Wait(
                    kind="record", action=self.url(verb.get("action") or url, url),
                    callback=self.url(callback, url) if callback else "",
                    on_silence=_next_redirect(items[i + 1:], url, self))
                return None
            elif tag == "Redirect":
                return self.url((verb.text or "").strip() or url, url), verb.get("method", "POST")
            elif tag in ("Hangup", "Reject"):
                turn.ended = True
                return None
        turn.ended = True  # the end of the document: Twilio hangs up
        return None

    # --- SMS ---------------------------------------------------------------------------------

    def sms(self, sender: str, body: str) -> list[str]:
        """Text `body` from `sender` to /twilio/sms; return the replies in the TwiML answer."""
        sid = new_sid("SM")
        params = {"AccountSid": self.account, "ApiVersion": API_VERSION, "MessageSid": sid,
                  "SmsMessageSid": sid, "SmsSid": sid, "SmsStatus": "received", "From": sender,
                  "To": self.to, "Body": body, "NumMedia": "0", "NumSegments": "1"}
        status, answer = self.post(self.url("/twilio/sms"), params)
        if status != 200:
            raise SimulatorError(f"/twilio/sms answered {status}")
        replies = []
        for message in _parse(answer).iter("Message"):
            inner = message.find("Body")
            text = inner.text if inner is not None else message.text
            if text and text.strip():
                replies.append(text.strip())
        return replies


def _parse(body: str) -> ET.Element:
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise SimulatorError(f"not TwiML: {exc}") from None
    if root.tag != "Response":
        raise SimulatorError("not TwiML: no <Response>")
    return root


def _spoken(verb: ET.Element, base: str, driver: Driver) -> dict[str, str]:
    if verb.tag == "Play":
        return {"kind": "play", "url": driver.url((verb.text or "").strip(), base), "text": ""}
    # <Say> may hold SSML (<prosody> ...): the words are all its text.
    return {"kind": "say", "text": "".join(verb.itertext()).strip(),
            "language": verb.get("language", "")}


def _next_redirect(rest: list[ET.Element], base: str, driver: Driver) -> str:
    for verb in rest:
        if verb.tag == "Redirect":
            return driver.url((verb.text or "").strip() or base, base)
        if verb.tag in ("Hangup", "Reject", "Gather", "Record"):
            break
    return ""
