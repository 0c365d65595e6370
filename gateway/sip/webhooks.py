"""The agent's side of the voice webhooks: POST form fields as Twilio sends them, signed as Twilio signs.

Runs in the agent's small HTTP pool, never on the SIP engine's thread. When the web cannot be
reached the step is kept in the office box's spool and replayed once the link returns.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import requests

from gateway import spool
from gateway.sip.twiml_runner import signature


class WebUnreachable(Exception):
    """The web did not answer (or answered 5xx): the caller hears the kept-and-call-back prompt."""


@dataclass
class CallFields:
    call_sid: str
    caller: str
    called: str
    status: str = "in-progress"

    def form(self, **extra: str) -> dict[str, str]:
        fields = {"CallSid": self.call_sid, "AccountSid": "AC" + "0" * 32, "From": self.caller,
                  "To": self.called, "Caller": self.caller, "Called": self.called,
                  "CallStatus": self.status, "Direction": "inbound", "ApiVersion": "2010-04-01"}
        fields.update(extra)
        return fields


def post(session: requests.Session, token: str, url: str, form: dict[str, str],
         timeout: float = 8.0, via: str = "") -> str:
    """The TwiML the webhook answers; raises WebUnreachable when there is no usable answer.

    Signed for `url` (under HOTLINE_PUBLIC_URL, as the web checks it); sent to `via` when the
    agent reaches the web another way (the same box: http://127.0.0.1:5000/...)."""
    headers = {"X-Twilio-Signature": signature(token, url, form)}
    try:
        response = session.post(via or url, data=form, headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        raise WebUnreachable(str(exc)) from exc
    if response.status_code >= 500:
        raise WebUnreachable(f"{url}: HTTP {response.status_code}")
    response.raise_for_status()
    return response.text


def upload(session: requests.Session, token: str, url: str, wav: Path,
           timeout: float = 30.0, via: str = "") -> None:
    """A recording's WAV to the web, signed as Twilio signs a request with a body: the URL
    carries the body's SHA-256 (`bodySHA256`) and the signature covers the URL."""
    data = wav.read_bytes()
    query = f"?bodySHA256={hashlib.sha256(data).hexdigest()}"
    headers = {"X-Twilio-Signature": signature(token, url + query, {}), "Content-Type": "audio/wav"}
    try:
        response = session.post((via or url) + query, data=data, headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        raise WebUnreachable(str(exc)) from exc
    if response.status_code >= 500:
        raise WebUnreachable(f"{url}: HTTP {response.status_code}")
    response.raise_for_status()


def keep(data_dir: Path, url: str, form: dict[str, str]) -> None:
    """Spool a step the web did not get, to be replayed (the web de-duplicates by CallSid)."""
    spool.append(data_dir, "sip-voice", {**form, "_url": url})
