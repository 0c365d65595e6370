"""A phone call as Twilio makes it: signed webhooks, TwiML followed verb by verb, keys or silence fed in.

`SimCall` rings the app, reads every TwiML document the way Twilio executes it (<Say>/<Play>
are "heard", <Gather> waits for a key, a <Redirect> is followed, <Record> waits for speech,
<Hangup> or the end of the document ends the call) and signs every request it makes with the
twilio package's RequestValidator over PUBLIC_URL + path + query, as Twilio does. When the call
ends it sends the call's status callback (and, after a recording, the recording callback).

Used by the tests through Flask's test client, and from the command line against a running
app:  python -m tests.callsim --url http://127.0.0.1:5091 --public-url URL --token T \
          --from +8613900000001 1 1
"""

from __future__ import annotations

import argparse
import secrets
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from twilio.request_validator import RequestValidator

ACCOUNT_SID = "AC" + "0" * 32
TWILIO_NUMBER = "+864828200000"


class Transport(Protocol):
    def post(self, path: str, params: dict[str, str], headers: dict[str, str]) -> tuple[int, str]:
        ...


class FlaskTransport:
    """Posts through Flask's test client; `base_url` sets the Host the app sees (e.g. a proxy's)."""

    def __init__(self, client: Any, base_url: str = "http://localhost",
                 extra_headers: dict[str, str] | None = None) -> None:
        self.client = client
        self.base_url = base_url
        self.extra_headers = extra_headers or {}

    def post(self, path: str, params: dict[str, str], headers: dict[str, str]) -> tuple[int, str]:
        response = self.client.post(path, data=urllib.parse.urlencode(params),
                                    headers={**self.extra_headers, **headers},
                                    content_type="application/x-www-form-urlencoded",
                                    base_url=self.base_url)
        return response.status_code, response.get_data(as_text=True)


class HttpTransport:
    """Posts over real HTTP to a running app."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def post(self, path: str, params: dict[str, str], headers: dict[str, str]) -> tuple[int, str]:
        request = urllib.request.Request(
            self.base_url + path, data=urllib.parse.urlencode(params).encode(), method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded", **headers})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


@dataclass
class Heard:
    """One thing the caller heard: words said (with language and voice) or a file played."""

    kind: str  # "say" or "play"
    text: str
    language: str = ""
    voice: str = ""


@dataclass
class Exchange:
    """One request Twilio made and the answer it got."""

    url: str
    params: dict[str, str]
    status: int
    body: str


class CallError(AssertionError):
    """The app answered something Twilio could not use (not 200, not TwiML, a bad action)."""


@dataclass
class SimCall:
    transport: Transport
    caller: str | None
    public_url: str
    token: str
    to: str = TWILIO_NUMBER
    sid: str = field(default_factory=lambda: "CA" + secrets.token_hex(16))
    status_path: str = "/twilio/status"
    # Where a status callback goes when the app has no /twilio/status route yet.
    status_fallback: Callable[[dict[str, str]], None] | None = None
    max_requests: int = 60

    heard: list[Heard] = field(default_factory=list)
    last: list[Heard] = field(default_factory=list)
    exchanges: list[Exchange] = field(default_factory=list)
    ended: bool = False
    status_sent: bool = False
    _waiting: tuple[str, ET.Element, list[ET.Element]] | None = None
    _recordings: int = 0

    # --- what a caller does ----------------------------------------------------------------

    def ring(self) -> SimCall:
        """The call comes in: Twilio requests the voice URL."""
        self._run(self._fetch("/twilio/voice", self._params("ringing")))
        return self

    def press(self, key: str) -> SimCall:
        """Press one key while a <Gather> is waiting (several, for a Gather of numDigits)."""
        _, gather, _ = self._expect("gather")
        allowed = gather.get("finishOnKey", "#")
        digits = "" if key in allowed and allowed else key
        params = {**self._params(), "Digits": digits,
                  "FinishedOnKey": key if digits == "" else ""}
        if digits == "":
            # Twilio: a finish key with nothing before it submits nothing; move on instead.
            self._continue()
            return self
        self._waiting = None
        self._run(self._fetch(self._action(gather), params))
        return self

    def silence(self) -> SimCall:
        """Say and press nothing until the <Gather> or <Record> times out."""
        _, _, rest = self._expect("gather", "record")
        self._waiting = None
        self._run_verbs(rest)
        return self

    def speak(self, seconds: int = 7, *, callback_first: bool = False,
              url: str | None = None) -> SimCall:
        """Speak into a <Record>, then press a key to finish (or let it time out); `url`: the
        RecordingUrl Twilio reports (a fake Twilio's, whose media the app can fetch)."""
        _, record, _ = self._expect("record")
        self._waiting = None
        params, callback = self._recording(record, seconds, digits="#", url=url)
        if callback_first and callback:
            self._recording_callback(params, callback)
        self._run(self._fetch(self._action(record), params))
        if callback and not callback_first:
            self._recording_callback(params, callback)
        return self

    def hang_up(self, *, spoke: int = 0) -> SimCall:
        """Put the phone down; during a <Record>, `spoke` seconds were recorded first."""
        if self._waiting and self._waiting[0] == "record" and spoke:
            record = self._waiting[1]
            params, callback = self._recording(record, spoke, digits="hangup")
            self._fetch(self._action(record), params)  # Twilio ignores the TwiML returned now
            self._waiting = None
            self._end()
            if callback:
                self._recording_callback(params, callback)
            return self
        self._waiting = None
        self._end()
        return self

    def replay(self) -> Exchange:
        """Deliver the last webhook request again, exactly as before (a Twilio retry)."""
        previous = next(e for e in reversed(self.exchanges) if "/twilio/voice" in e.url)
        path = previous.url[len(self.public_url):]
        status, body = self.post(path, previous.params)
        return Exchange(previous.url, previous.params, status, body)

    # --- what the caller heard ---------------------------------------------------------------

    @property
    def said(self) -> str:
        """Everything said in the last answer, joined (played files show as [play <url>])."""
        return " ".join(h.text if h.kind == "say" else f"[play {h.text}]" for h in self.last)

    @property
    def transcript(self) -> str:
        return " ".join(h.text if h.kind == "say" else f"[play {h.text}]" for h in self.heard)

    @property
    def twiml(self) -> str:
        return self.exchanges[-1].body if self.exchanges else ""

    @property
    def waiting_for(self) -> str | None:
        return self._waiting[0] if self._waiting else None

    # --- the protocol --------------------------------------------------------------------------

    def post(self, path: str, params: dict[str, str], *, token: str | None = None,
             signature: str | None = None) -> tuple[int, str]:
        """POST signed as Twilio signs: HMAC-SHA1 of PUBLIC_URL + path + query and the form."""
        url = self.public_url + path
        if signature is None:
            signature = RequestValidator(token or self.token).compute_signature(url, params)
        headers = {"X-Twilio-Signature": signature} if signature else {}
        return self.transport.post(path, params, headers)

    def _params(self, status: str = "in-progress") -> dict[str, str]:
        params = {"AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01", "CallSid": self.sid,
                  "CallStatus": status, "Direction": "inbound", "To": self.to,
                  "Called": self.to, "ToCountry": "CN", "CalledCountry": "CN"}
        if self.caller is not None:
            params.update({"From": self.caller, "Caller": self.caller, "FromCountry": "CN",
                           "CallerCountry": "CN"})
        return params

    def _fetch(self, path: str, params: dict[str, str]) -> str:
        if len(self.exchanges) >= self.max_requests:
            raise CallError(f"more than {self.max_requests} requests: the menu loops")
        status, body = self.post(path, params)
        self.exchanges.append(Exchange(self.public_url + path, params, status, body))
        if status != 200:
            raise CallError(f"{path} answered {status}: {body[:300]}")
        return body

    def _action(self, verb: ET.Element) -> str:
        url = verb.get("action") or self.exchanges[-1].url
        return self._path(url)

    def _path(self, url: str) -> str:
        if url.startswith(self.public_url):
            return url[len(self.public_url):]
        if url.startswith("/"):
            return url
        raise CallError(f"Twilio cannot reach {url!r}: not under {self.public_url}")

    def _run(self, body: str) -> None:
        try:
            root = ET.fromstring(body)
        except ET.ParseError as exc:
            raise CallError(f"not TwiML: {body[:300]}") from exc
        if root.tag != "Response":
            raise CallError(f"TwiML must be a <Response>: {body[:300]}")
        self.last = []
        self._run_verbs(list(root))

    def _run_verbs(self, verbs: list[ET.Element]) -> None:
        for i, verb in enumerate(verbs):
            rest = verbs[i + 1:]
            if verb.tag in ("Say", "Play"):
                self._hear(verb)
            elif verb.tag == "Pause":
                continue
            elif verb.tag == "Gather":
                for inner in verb:
                    if inner.tag in ("Say", "Play"):
                        self._hear(inner)
                self._waiting = ("gather", verb, rest)
                return
            elif verb.tag == "Record":
                self._waiting = ("record", verb, rest)
                return
            elif verb.tag == "Redirect":
                self._run(self._fetch(self._path((verb.text or "").strip()), self._params()))
                return
            elif verb.tag == "Hangup":
                self._end()
                return
            else:
                raise CallError(f"unexpected verb <{verb.tag}>")
        self._end()  # Twilio hangs up when the document runs out

    def _continue(self) -> None:
        assert self._waiting is not None
        rest = self._waiting[2]
        self._waiting = None
        self._run_verbs(rest)

    def _hear(self, verb: ET.Element) -> None:
        if verb.tag == "Play":
            heard = Heard("play", (verb.text or "").strip())
        else:
            heard = Heard("say", "".join(verb.itertext()).strip(), verb.get("language", ""),
                          verb.get("voice", ""))
        self.heard.append(heard)
        self.last.append(heard)

    def _expect(self, *kinds: str) -> tuple[str, ET.Element, list[ET.Element]]:
        if self.ended:
            raise CallError("the call has ended")
        if self._waiting is None or self._waiting[0] not in kinds:
            raise CallError(f"not waiting for {'/'.join(kinds)} but {self.waiting_for}")
        return self._waiting

    def _recording(self, record: ET.Element, seconds: int, digits: str, url: str | None = None
                   ) -> tuple[dict[str, str], str | None]:
        self._recordings += 1
        rsid = url.rsplit("/", 1)[-1] if url else "RE" + secrets.token_hex(16)
        url = url or f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{rsid}"
        max_length = int(record.get("maxLength", "3600"))
        duration = str(min(seconds, max_length))
        params = {**self._params(), "RecordingUrl": url, "RecordingSid": rsid,
                  "RecordingDuration": duration, "Digits": digits}
        callback = record.get("recordingStatusCallback")
        return params, (callback if callback else None)

    def _recording_callback(self, recorded: dict[str, str], callback: str) -> None:
        """Twilio's recordingStatusCallback: the audio file is processed and ready."""
        params = {"AccountSid": ACCOUNT_SID, "CallSid": self.sid,
                  "RecordingSid": recorded["RecordingSid"],
                  "RecordingUrl": recorded["RecordingUrl"],
                  "RecordingStatus": "completed",
                  "RecordingDuration": recorded["RecordingDuration"],
                  "RecordingChannels": "1", "RecordingSource": "RecordVerb"}
        path = self._path(callback)
        status, body = self.post(path, params)
        self.exchanges.append(Exchange(self.public_url + path, params, status, body))
        if status != 200:
            raise CallError(f"recording callback answered {status}")

    def _end(self) -> None:
        if self.ended:
            return
        self.ended = True
        self._waiting = None
        self.send_status("completed")

    def send_status(self, status: str = "completed", **extra: str) -> int:
        """The call's status callback, as Twilio sends it to the number's StatusCallback URL."""
        params = {**self._params(status), "CallDuration": "42", "Timestamp":
                  "Mon, 01 Jan 2024 08:00:00 +0000", "CallbackSource": "call-progress-events",
                  "SequenceNumber": "0", **extra}
        code, _ = self.post(self.status_path, params)
        if code == 404 and self.status_fallback is not None:
            self.status_fallback(params)
            code = 200
        self.status_sent = True
        return code


def main(argv: list[str] | None = None) -> None:
    """Make one call against a running app and print every TwiML document it got."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="where the app listens")
    parser.add_argument("--public-url", required=True, help="HOTLINE_PUBLIC_URL of the app")
    parser.add_argument("--token", required=True, help="the webhook token (TWILIO_AUTH_TOKEN)")
    parser.add_argument("--from", dest="caller", default="+8613900000001")
    parser.add_argument("actions", nargs="*",
                        help="keys (0-9 * #), silence, speak, hangup; in order")
    args = parser.parse_args(argv)
    call = SimCall(HttpTransport(args.url), args.caller, args.public_url.rstrip("/"), args.token)
    call.ring()
    for action in args.actions:
        if call.ended:
            break
        if action == "silence":
            call.silence()
        elif action == "speak":
            call.speak()
        elif action == "hangup":
            call.hang_up()
        else:
            call.press(action)
    for exchange in call.exchanges:
        query = urllib.parse.urlsplit(exchange.url)
        shown = {k: v for k, v in exchange.params.items() if k in ("Digits", "RecordingUrl",
                                                                   "CallStatus", "From")}
        print(f"--> POST {query.path}{'?' + query.query if query.query else ''} {shown}")
        print(f"<-- {exchange.status} {exchange.body}\n")
    print("heard:", call.transcript)


if __name__ == "__main__":
    main()
