"""A fake Twilio REST API: a real HTTP server on 127.0.0.1 that checks every request against Twilio's OpenAPI.

It answers `POST .../Messages.json` with 201 and a Message as Twilio shapes it, and
`GET .../Messages.json` (the list, with its To/From filters) with a page of what it
accepted. Every request is validated with openapi-core against Twilio's own description
(../shared/twilio-openapi/twilio_api_v2010.json, or $HOTLINE_TWILIO_OPENAPI), plus the
checks the description leaves out (an unknown form field, a missing sender, basic auth).
What it received is kept, and it can be told to fail: a scripted answer for the next sends
(HTTP 500, 429/20429, 21211, 21610, 21614, ...), a number that always fails, slow answers,
a sliding-window rate limit, or refused connections (it stops listening).

Run alone for a manual check: ``python -m tests.fake_twilio --port 8765``; what it received
is at ``GET /_fake/received``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import requests
from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest
from twilio.request_validator import RequestValidator
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from gateway.settings import ROOT
from gateway.texts import segments

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "test-auth-token-0123456789abcdef"  # the same as tests/conftest.py's
FROM_NUMBER = "+15005550006"
SERVICE_SID = "MG" + "fedcba9876543210" * 2
MESSAGES_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
SPEC_LOCATIONS = (ROOT.parent / "shared" / "twilio-openapi" / "twilio_api_v2010.json",
                  ROOT / "tests" / "data" / "twilio_api_v2010.json")
ERRORS = {
    20003: (401, "Authenticate"),
    20429: (429, "Too Many Requests"),
    21211: (400, "The 'To' number is not a valid phone number."),
    21603: (400, "A 'From' or 'MessagingServiceSid' parameter is required to send a message."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21614: (400, "'To' number is not a valid mobile number"),
    20500: (500, "An internal server error has occurred"),
    20503: (503, "Service unavailable"),
}


def spec_path() -> Path | None:
    override = os.environ.get("HOTLINE_TWILIO_OPENAPI")
    candidates = (Path(override),) if override else SPEC_LOCATIONS
    return next((p for p in candidates if p.exists()), None)


def need_spec() -> None:
    """Skip a test without Twilio's description; under HOTLINE_REQUIRE_ALL=1 (CI), fail it."""
    if spec_path() is not None:
        return
    import pytest

    message = ("Twilio's OpenAPI description is not there: set HOTLINE_TWILIO_OPENAPI to "
               "twilio_api_v2010.json")
    if os.environ.get("HOTLINE_REQUIRE_ALL") == "1":
        pytest.fail(message)
    pytest.skip(message)


@lru_cache(maxsize=1)
def openapi() -> tuple[OpenAPI, frozenset[str]]:
    """Twilio's OpenAPI description (parsed once), and the form fields CreateMessage knows."""
    path = spec_path()
    if path is None:
        raise FileNotFoundError("Twilio's OpenAPI description is not there: set HOTLINE_TWILIO_OPENAPI")
    # json.load, not from_file_path: the file's \ud83d escapes are lone surrogates a YAML
    # reader refuses.
    data = json.loads(path.read_text(encoding="utf-8"))
    create = data["paths"]["/2010-04-01/Accounts/{AccountSid}/Messages.json"]["post"]
    schema = create["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    return OpenAPI.from_dict(data), frozenset(schema["properties"])


class QuietHandler(WSGIRequestHandler):
    """No access log on the test's output: what the fake saw is in `received`."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class AsTwilio(WerkzeugOpenAPIRequest):
    """The request as if it had been sent to api.twilio.com, the server the description names."""

    @property
    def host_url(self) -> str:
        return "https://api.twilio.com/"


@dataclass(frozen=True)
class Answer:
    """A scripted answer to one send: an HTTP status and a Twilio error code."""

    status: int
    code: int

    @classmethod
    def error(cls, code: int) -> Answer:
        """A Twilio error code (21211), or a bare HTTP status (500, 429, 503)."""
        if code < 1000:
            return cls(code, {429: 20429, 503: 20503}.get(code, 20500))
        return cls(ERRORS[code][0], code)


SERVER_ERROR = Answer(500, 20500)
TOO_MANY = Answer(429, 20429)


@dataclass
class Received:
    """One request as the fake saw it, and what it answered."""

    method: str
    path: str
    form: dict[str, str]
    query: dict[str, str]
    at: float
    status: int = 0
    problems: list[str] = field(default_factory=list)


class FakeTwilio:
    """The fake: `start()` it (or use it as a context manager), point TWILIO_API_BASE at `url`."""

    def __init__(self, *, port: int = 0, account_sid: str = ACCOUNT_SID,
                 auth_token: str = AUTH_TOKEN, validate: bool = True) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.port = port
        self.delay = 0.0  # seconds between accepting a message and answering
        self.rate_limit = 0  # sends allowed in any one second (0: any number)
        self.callbacks = False  # post signed "sent" and "delivered" status callbacks
        # Check every request against Twilio's description (tests); a benchmark that measures
        # the gateway, not the fake, turns it off (and then needs no description file).
        self.validate = validate
        self.received: list[Received] = []
        self.accepted: list[dict[str, Any]] = []
        self.failing: dict[str, int] = {}  # number -> error code, every time
        self.recordings: dict[str, bytes] = {}  # recording sid -> its WAV (a call's <Record>)
        self._script: deque[Answer] = deque()
        self._lock = threading.Lock()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # --- running ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeTwilio:
        if self.validate:
            openapi()  # parse the description before the first request, not during it
        self.start_listening()
        return self

    def start_listening(self) -> None:
        self._server = make_server("127.0.0.1", self.port, self.wsgi, threaded=True,
                                   request_handler=QuietHandler)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="fake-twilio", daemon=True)
        self._thread.start()

    def stop_listening(self) -> None:
        """Close the socket: connections are refused until `start_listening`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def close(self) -> None:
        self.stop_listening()

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- behaviour ----------------------------------------------------------------------

    def fail_next(self, *answers: Answer | int) -> None:
        """The next sends get these answers (an Answer, or a Twilio error code), in order."""
        with self._lock:
            self._script.extend(a if isinstance(a, Answer) else Answer.error(a) for a in answers)

    def fail_for(self, number: str, code: int) -> None:
        """Every send to `number` is refused with `code` (e.g. 21211)."""
        self.failing[number] = code

    def add_recording(self, wav: bytes) -> str:
        """A recording as a call's <Record> leaves it; its RecordingUrl (no extension, as
        Twilio posts it). Its media is at that URL plus .wav, behind the account's basic
        auth. From Twilio's docs (the media URL is not in the OpenAPI description)."""
        sid = "RE" + uuid.uuid4().hex
        self.recordings[sid] = wav
        return f"{self.url}/2010-04-01/Accounts/{self.account_sid}/Recordings/{sid}"

    # --- what it saw ----------------------------------------------------------------------

    def sends(self) -> list[Received]:
        return [r for r in self.received if r.method == "POST"]

    def accepted_to(self) -> list[str]:
        return [m["to"] for m in self.accepted]

    def problems(self) -> list[str]:
        """Every way a request broke Twilio's description; a test expects none."""
        return [f"{r.method} {r.path}: {p}" for r in self.received for p in r.problems]

    def send_times(self) -> list[float]:
        return [r.at for r in self.sends() if r.status == 201]

    # --- the API ------------------------------------------------------------------------

    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        if request.path == "/_fake/received":
            body = {"accepted": self.accepted, "received": [r.__dict__ for r in self.received]}
            return _json(200, body)(environ, start_response)
        return self.handle(request)(environ, start_response)

    def handle(self, request: Request) -> Response:
        request.get_data()  # read (and keep) the raw body first: the validator reads it too
        seen = Received(method=request.method, path=request.path, form=request.form.to_dict(),
                        query=request.args.to_dict(), at=time.time())
        with self._lock:
            self.received.append(seen)
        answer = self._answer(request, seen)
        seen.status = answer.status_code
        return answer

    def _answer(self, request: Request, seen: Received) -> Response:
        media = f"/2010-04-01/Accounts/{self.account_sid}/Recordings/"
        if request.method == "GET" and request.path.startswith(media) and request.path.endswith(".wav"):
            if not self._authorised(request):
                return _error(20003)
            wav = self.recordings.get(request.path[len(media):-4])
            if wav is None:
                return _json(404, {"code": 20404, "message": "The requested resource was not found",
                                   "status": 404})
            return Response(wav, 200, mimetype="audio/x-wav")
        if self.validate:
            spec = openapi()[0]
            try:
                spec.validate_request(AsTwilio(request))
            except Exception as exc:  # every validation error is a finding, whatever its class
                cause = exc.__cause__ or exc
                seen.problems.append(f"{type(exc).__name__}: {cause}")
        if not self._authorised(request):
            return _error(20003)
        if request.path != f"/2010-04-01/Accounts/{self.account_sid}/Messages.json":
            seen.problems.append("not a path the fake serves")
            return _json(404, {"code": 20404, "message": "The requested resource was not found",
                               "status": 404})
        if request.method == "GET":
            return self._list(request)
        if self.validate:
            unknown = sorted(set(seen.form) - openapi()[1])
            if unknown:
                seen.problems.append(f"fields Twilio does not know: {unknown}")
        if not (seen.form.get("From") or seen.form.get("MessagingServiceSid")):
            seen.problems.append("no From and no MessagingServiceSid")
            return _error(21603)
        if seen.problems:
            return _json(400, {"code": 21000, "message": "; ".join(seen.problems), "status": 400})
        return self._create(seen)

    def _authorised(self, request: Request) -> bool:
        header = request.headers.get("Authorization", "")
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return header == f"Basic {expected}"

    def _create(self, seen: Received) -> Response:
        with self._lock:
            scripted = self._script.popleft() if self._script else None
            # The second before this one arrived: a send that arrived later but was answered
            # first (this one's validation ran slow) is not in it.
            recent = sum(1 for r in self.received
                         if r.method == "POST" and r.status == 201 and 0 <= seen.at - r.at < 1.0)
        to = seen.form.get("To", "")
        if scripted is not None:
            return _error(scripted.code, scripted.status)
        if to in self.failing:
            return _error(self.failing[to])
        if self.rate_limit and recent >= self.rate_limit:
            return _error(20429)
        message = self._message(seen.form)
        with self._lock:
            self.accepted.append(message)
        seen.status = 201  # counted as accepted at once, even while the answer is delayed
        if self.callbacks and seen.form.get("StatusCallback"):
            threading.Thread(target=self._report, args=(seen.form["StatusCallback"], message),
                             daemon=True).start()
        if self.delay:
            time.sleep(self.delay)  # slow: Twilio has the message, the answer is late
        return _json(201, message)

    def _message(self, form: dict[str, str]) -> dict[str, Any]:
        sid = "SM" + uuid.uuid4().hex
        now = format_datetime(datetime.now(UTC))
        body = form.get("Body", "")
        return {
            "account_sid": self.account_sid, "api_version": "2010-04-01", "body": body,
            "date_created": now, "date_sent": None, "date_updated": now,
            "direction": "outbound-api", "error_code": None, "error_message": None,
            "from": form.get("From") or FROM_NUMBER,
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "num_media": "0", "num_segments": str(segments(body)), "price": None,
            "price_unit": "USD", "sid": sid, "status": "queued",
            "subresource_uris": {"media": f"/2010-04-01/Accounts/{self.account_sid}/Messages/"
                                          f"{sid}/Media.json"},
            "to": form.get("To", ""),
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
            "status_callback": form.get("StatusCallback"),
        }

    def _list(self, request: Request) -> Response:
        to, sender = request.args.get("To"), request.args.get("From")
        size = int(request.args.get("PageSize", "50"))
        with self._lock:
            found = [m for m in reversed(self.accepted)  # newest first, as Twilio lists them
                     if (not to or m["to"] == to) and (not sender or m["from"] == sender)]
        page = [{k: v for k, v in m.items() if k != "status_callback"} for m in found[:size]]
        uri = f"{MESSAGES_PATH}?PageSize={size}&Page=0"
        return _json(200, {"messages": page, "end": max(0, len(page) - 1), "first_page_uri": uri,
                           "next_page_uri": None, "page": 0, "page_size": size,
                           "previous_page_uri": None, "start": 0, "uri": uri})

    def _report(self, url: str, message: dict[str, Any]) -> None:
        """Twilio's status callbacks for an accepted message: sent, then delivered."""
        validator = RequestValidator(self.auth_token)
        for status in ("sent", "delivered"):
            time.sleep(0.05)
            params = {"AccountSid": self.account_sid, "From": message["from"], "To": message["to"],
                      "MessageSid": message["sid"], "SmsSid": message["sid"],
                      "MessageStatus": status, "SmsStatus": status, "ApiVersion": "2010-04-01"}
            signature = validator.compute_signature(url, params)
            try:
                requests.post(url, data=params, headers={"X-Twilio-Signature": signature},
                              timeout=5)
            except requests.RequestException:
                return  # nobody listening: Twilio would retry; the fake does not


def _json(status: int, body: Any) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status,
                    content_type="application/json")


def _error(code: int, status: int | None = None) -> Response:
    http, message = ERRORS.get(code, (status or 400, f"error {code}"))
    status = status or http
    return _json(status, {"code": code, "message": message,
                          "more_info": f"https://www.twilio.com/docs/errors/{code}",
                          "status": status})


# --- running real workers against the fake ----------------------------------------------


def twilio_env(fake: FakeTwilio, redis_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a `hotline worker` (or `hotline run`) that sends through the fake."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOTLINE_", "TWILIO_"))}
    env.update({
        "REDIS_URL": redis_url, "HOTLINE_DATA_DIR": str(data_dir),
        "HOTLINE_PUBLIC_URL": "https://hotline.example.org", "HOTLINE_SMS_CHANNEL": "twilio",
        "TWILIO_ACCOUNT_SID": fake.account_sid, "TWILIO_AUTH_TOKEN": fake.auth_token,
        "TWILIO_FROM_NUMBER": FROM_NUMBER, "TWILIO_API_BASE": fake.url,
        "HOTLINE_SMS_RATE": "0", "HOTLINE_RETRY_FIRST": "1", "HOTLINE_RETRY_MAX": "2",
        "HOTLINE_RETRY_FOR": "60", "HOTLINE_SWEEP_AFTER": "3",
    })
    env.update(extra)
    return env


def start_worker(env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    """`hotline worker` in a process group of its own (so a test can kill it like a power cut)."""
    return subprocess.Popen([sys.executable, "-m", "gateway.cli", "worker"], env=env, cwd=cwd,
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=open(cwd / f"worker-{time.time():.3f}.log", "wb"))


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    """A warm shutdown of each worker's process group; a kill for any that will not stop."""
    for worker in workers:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def wait_until(check: Callable[[], Any], timeout: float = 15.0, every: float = 0.05) -> Any:
    """Poll until `check()` is truthy; its value, or AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {getattr(check, '__name__', check)}")
        time.sleep(every)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--callbacks", action="store_true", help="post status callbacks")
    args = parser.parse_args()
    fake = FakeTwilio(port=args.port).start()
    fake.callbacks = args.callbacks
    print(f"fake Twilio on {fake.url}: TWILIO_ACCOUNT_SID={fake.account_sid} "
          f"TWILIO_AUTH_TOKEN={fake.auth_token}", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        fake.close()


if __name__ == "__main__":
    main()
