"""A fake SMS Gateway for Android (Local Server mode) on 127.0.0.1, speaking its HTTP API for real.

What the hotline uses of the app: basic auth; `POST /messages` answered 202, or 409 for an id it
already has; `GET /inbox`; `POST/GET /webhooks`; and the phone's side: texts received and
messages sent become signed webhook posts (`X-Signature` = hex HMAC-SHA256 of body + `X-Timestamp`),
retried with a growing wait until the gateway answers 2xx, like the app does.
Also here: `LiveApp`, the Flask app served on a real port so the fake phone can reach it,
and `run_due`, which runs the jobs whose retry time has come.

Follows the app's source (capcom6/android-sms-gateway at 0cdc5d8, v1.68; read, not copied):
helpers/DateTimeParser.kt (`from`/`to` must match `yyyy-MM-dd'T'HH:mm:ss[.SSS]XXX`, else 400
"Invalid from datetime"), modules/localserver/routes/InboxRoutes.kt and
modules/incoming/db/IncomingMessagesDao.kt (filter on the network time `createdAt`, newest
first; no route before v1.59: 404), modules/incoming/IncomingMessagesService.kt (inbox id
`text:<signed hashCode>`), modules/receiver/ReceiverService.kt (webhook `messageId` the same hash
as unsigned hex, `receivedAt` the network time), modules/webhooks/WebHooksService.kt (webhook
URLs only https:// or http://127.0.0.1), MessagesRoutes.kt (409 for a known id from v1.58,
202 before), WebService.kt `/health`, extensions/GsonBuilder.kt (dates with milliseconds and
the phone's offset), messages/MessagesService.kt (sms:delivered once per part).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import uuid4

from flask import Flask
from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest
from werkzeug.serving import make_server
from werkzeug.test import EnvironBuilder

from gateway.context import Hotline
from gateway.texts import segments

CHINA = timezone(timedelta(hours=8))
# helpers/DateTimeParser.kt on Android 8+: yyyy-MM-dd'T'HH:mm:ss[.SSS]XXX, nothing else
APP_DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?(Z|[+-]\d\d:\d\d)$")
SWAGGER = Path(__file__).resolve().parents[2] / "shared" / "android-sms-gateway" / "swagger.json"


def version_at_least(version: str, wanted: str) -> bool:
    return tuple(int(x) for x in version.split(".")[:2]) >= tuple(int(x) for x in wanted.split("."))


def app_date(when: datetime) -> str:
    """A date as the app writes it (GsonBuilder.kt): milliseconds and the phone's offset."""
    return when.astimezone(CHINA).isoformat(timespec="milliseconds")


def java_hash(*parts: str) -> int:
    """A signed 32-bit hash standing in for the app's data-class hashCode()."""
    value = int(hashlib.md5("|".join(parts).encode()).hexdigest()[:8], 16)
    return value - (1 << 32) if value >= 1 << 31 else value


def sign(key: str, body: bytes, timestamp: str) -> str:
    return hmac.new(key.encode(), body + timestamp.encode(), hashlib.sha256).hexdigest()


class FakePhone:
    """The app's Local Server plus the phone behind it. `port` stays the same across stop/start."""

    def __init__(self, user: str = "sms", password: str = "pa55word", signing_key: str = "k3y",
                 retry_first: float = 0.05, retries: int = 10, version: str = "1.68.0") -> None:
        self.user, self.password, self.signing_key = user, password, signing_key
        self.retry_first, self.retries = retry_first, retries
        self.accepted: dict[str, dict[str, Any]] = {}  # id -> the POST /messages body
        self.arrived: list[float] = []  # when each accepted message reached the phone (epoch s)
        self.states: dict[str, str] = {}  # id -> Pending, Sent, Delivered, Failed
        self.inbox: list[dict[str, Any]] = []
        self.webhooks: dict[str, dict[str, str]] = {}
        self.attempts: list[tuple[str, int]] = []  # (event id, HTTP status or 0 unreachable)
        self.answers: list[int] = []  # statuses to answer the next POST /messages with
        self.auto_send = True  # report sms:sent and sms:delivered for each accepted message
        self.version = version
        self.problems: list[str] = []  # requests the app's description or source would refuse
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._busy = 0
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- the server -------------------------------------------------------------------------

    def start(self) -> FakePhone:
        phone = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                phone._handle(self, "GET")

            def do_POST(self) -> None:
                phone._handle(self, "POST")

        self._server = _Server(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """The phone goes away (switched off, out of Wi-Fi): connections are refused."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _handle(self, req: BaseHTTPRequestHandler, method: str) -> None:
        expected = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        if req.headers.get("Authorization") != expected:
            return _reply(req, 401, {"message": "Unauthorized"})
        parts = urlsplit(req.path)
        body: Any = None
        raw = b""
        if method == "POST":
            raw = req.rfile.read(int(req.headers.get("Content-Length") or 0))
        self._check(method, parts.path, parts.query, raw, dict(req.headers))
        if method == "POST":
            try:
                body = json.loads(raw)
            except ValueError:
                return _reply(req, 400, {"message": "Invalid JSON"})
        if (method, parts.path) == ("POST", "/messages"):
            return self._post_message(req, body)
        if method == "GET" and parts.path.startswith("/messages/"):
            ident = parts.path.split("/", 2)[2]
            if ident not in self.accepted:
                return _reply(req, 404, {"message": "message not found"})
            return _reply(req, 200, {"id": ident, "state": self.states.get(ident, "Pending")})
        if (method, parts.path) == ("GET", "/health"):
            return _reply(req, 200, {"status": "pass", "version": self.version, "releaseId": 168,
                                     "checks": {}})
        if (method, parts.path) == ("GET", "/inbox"):
            if not version_at_least(self.version, "1.59"):
                return _reply(req, 404, {"message": "Not found"})
            query = parse_qs(parts.query)
            for name in ("from", "to"):
                if name in query and not APP_DATE.match(query[name][0]):
                    self.problems.append(f"{name}={query[name][0]} is not a date the app parses")
                    return _reply(req, 400, {"message": f"Invalid {name} datetime"})
            return _reply(req, 200, self._inbox(query))
        if (method, parts.path) == ("POST", "/webhooks"):
            url = str(body.get("url") or "")
            if not (url.startswith("https://") or (urlsplit(url).hostname == "127.0.0.1"
                    and url.startswith("http://"))):
                return _reply(req, 400, {"message": "url must start with https:// or "
                                                    "http://127.0.0.1"})
            hook = {"id": body.get("id") or uuid4().hex, "url": body["url"], "event": body["event"]}
            self.webhooks[hook["id"]] = hook
            return _reply(req, 201, hook)
        if (method, parts.path) == ("GET", "/webhooks"):
            return _reply(req, 200, list(self.webhooks.values()))
        return _reply(req, 404, {"message": "Not found"})

    def _check(self, method: str, path: str, query: str, raw: bytes,
               headers: dict[str, str]) -> None:
        """Every request against the app's swagger.json with openapi-core, as fake_twilio does."""
        request = EnvironBuilder(path="/3rdparty/v1" + path, method=method, query_string=query,
                                 data=raw, headers=headers).get_request()
        try:
            _spec().validate_request(_AsPhone(request))
        except Exception as exc:  # every validation error is a finding, whatever its class
            cause = str(exc.__cause__ or exc)
            # The description wraps enums (event, priority) in allOf + "type: object": a
            # string there is what the app's code takes, so that one complaint is the spec's.
            if "is not of type 'object'" not in cause:
                self.problems.append(f"{method} {path}: {type(exc).__name__}: {cause[:200]}")

    def _post_message(self, req: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        if self.answers:
            status = self.answers.pop(0)
            return _reply(req, status, {"message": f"answering {status} as told"})
        text = (body.get("textMessage") or {}).get("text") or body.get("message")
        numbers = body.get("phoneNumbers") or []
        if not text or not numbers or not all(n.startswith("+") for n in numbers):
            return _reply(req, 400, {"message": "phoneNumbers and textMessage.text are required"})
        unknown = set(body) - set(_message_fields())
        if unknown:
            self.problems.append(f"POST /messages fields the app does not know: {sorted(unknown)}")
        if "ttl" in body and "validUntil" in body:
            self.problems.append("ttl and validUntil together")
        ident = body.get("id") or uuid4().hex
        with self._lock:
            if ident in self.accepted:
                if not version_at_least(self.version, "1.58"):
                    return _reply(req, 202, {"id": ident, "state": self.states.get(ident, "Pending")})
                return _reply(req, 409, {"message": f"message with id {ident} already exists"})
            self.accepted[ident] = body
            self.arrived.append(time.time())
        _reply(req, 202, {"id": ident, "state": "Pending",
                          "recipients": [{"phoneNumber": n, "state": "Pending"} for n in numbers]})
        if self.auto_send:
            for number in numbers:
                now = datetime.now(CHINA).isoformat(timespec="milliseconds")
                base = {"messageId": ident, "phoneNumber": number, "simNumber": 1}
                self.emit("sms:sent", {**base, "partsCount": segments(text), "sentAt": now})
                for _ in range(segments(text)):  # the app reports each part's delivery
                    self.emit("sms:delivered", {**base, "deliveredAt": now})
            self.states[ident] = "Delivered"

    def _inbox(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        since = datetime.fromisoformat(query.get("from", ["1970-01-01T00:00:00+00:00"])[0])
        until = datetime.fromisoformat(query["to"][0]) if "to" in query else datetime.now(UTC)
        limit, offset = int(query.get("limit", ["50"])[0]), int(query.get("offset", ["0"])[0])
        found = [m for m in self.inbox
                 if since <= datetime.fromisoformat(m["createdAt"]) <= until]
        found.sort(key=lambda m: (datetime.fromisoformat(m["createdAt"]), m["id"]), reverse=True)
        return found[offset:offset + limit]

    # --- the phone's side -------------------------------------------------------------------

    def receive(self, sender: str, text: str, *, at: datetime | None = None,
                sender_field: str = "phoneNumber", webhook: bool = True) -> dict[str, Any]:
        """A text arrives on the SIM now, stamped by the network `at` (maybe long before).

        Kept in the inbox as `text:<signed hash>` and posted to the sms:received webhooks with
        the same hash as unsigned hex; both carry the network's time, not the arrival.
        """
        at = (at or datetime.now(CHINA)).replace(microsecond=(at or datetime.now()).microsecond
                                                 // 1000 * 1000)
        digest = java_hash(sender, text, str(at.timestamp()))
        self.inbox.append({"id": f"text:{digest}", "type": "SMS", "sender": sender,
                           "recipient": None, "simNumber": 1, "contentPreview": text,
                           "createdAt": app_date(at)})
        payload = {"messageId": format(digest & 0xFFFFFFFF, "x"), "message": text,
                   sender_field: sender, "simNumber": 1, "receivedAt": app_date(at)}
        return self.emit("sms:received", payload) if webhook else {"payload": payload}

    def emit(self, name: str, payload: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
        """Post one event to every webhook registered for it, each in a thread that retries."""
        event = {"deviceId": "ffffffffceb0b1db0000018e937c815b", "event": name,
                 "id": event_id or uuid4().hex[:21], "payload": payload, "webhookId": ""}
        for hook in list(self.webhooks.values()):
            if hook["event"] == name:
                self.deliver({**event, "webhookId": hook["id"]}, hook["url"])
        return event

    def deliver(self, event: dict[str, Any], url: str) -> None:
        with self._lock:
            self._busy += 1
        threading.Thread(target=self._deliver, args=(event, url), daemon=True).start()

    def _deliver(self, event: dict[str, Any], url: str) -> None:
        body = json.dumps(event, ensure_ascii=False).encode()
        wait = self.retry_first
        try:
            for _ in range(self.retries):
                stamp = str(int(time.time()))  # the app signs every attempt afresh
                request = urllib.request.Request(url, data=body, method="POST", headers={
                    "Content-Type": "application/json", "X-Timestamp": stamp,
                    "X-Signature": sign(self.signing_key, body, stamp)})
                try:
                    with urllib.request.urlopen(request, timeout=5) as response:
                        status = response.status
                except urllib.error.HTTPError as exc:
                    status = exc.code
                except OSError:
                    status = 0
                self.attempts.append((event["id"], status))
                if 200 <= status < 300:
                    return
                time.sleep(wait)
                wait *= 2
        finally:
            with self._lock:
                self._busy -= 1

    def wait_idle(self, timeout: float = 10) -> None:
        """Until every webhook delivery has succeeded or given up."""
        deadline = time.monotonic() + timeout
        while self._busy and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not self._busy, "webhook deliveries still running"


class _AsPhone(WerkzeugOpenAPIRequest):
    """The request as if sent to the server the description names."""

    @property
    def host_url(self) -> str:
        return "https://api.sms-gate.app/"


@lru_cache(maxsize=1)
def _spec() -> OpenAPI:
    return OpenAPI.from_dict(json.loads(SWAGGER.read_text(encoding="utf-8")))


def _message_fields() -> list[str]:
    """The fields of POST /messages in the app's swagger.json (beside this repository)."""
    data = json.loads(SWAGGER.read_text(encoding="utf-8"))
    return list(data["components"]["schemas"]["smsgateway.Message"]["properties"])


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True  # stop() then start() on the same port: the phone came back
    daemon_threads = True


def _reply(req: BaseHTTPRequestHandler, status: int, data: Any) -> None:
    raw = json.dumps(data, ensure_ascii=False).encode()
    req.send_response(status)
    req.send_header("Content-Type", "application/json")
    req.send_header("Content-Length", str(len(raw)))
    req.end_headers()
    req.wfile.write(raw)


class LiveApp:
    """The Flask app on a real port of 127.0.0.1 (the phone posts webhooks to it over HTTP)."""

    def __init__(self, app: Flask, port: int = 0) -> None:
        self.app, self.port = app, port
        self._server: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveApp:
        self._server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self.port = self._server.server_port
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def run_due(hl: Hotline) -> None:
    """`hotline worker --burst`: the jobs whose (retry) time has come, and everything queued."""
    from workers.service import run_worker

    run_worker(hl, burst=True)


def main() -> None:
    """`python -m tests.fake_android --port 8081`: one fake phone to try the hotline against."""
    import argparse

    parser = argparse.ArgumentParser(description="A fake SMS Gateway for Android phone")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--password", default="pa55word")
    parser.add_argument("--signing-key", default="k3y")
    args = parser.parse_args()
    phone = FakePhone(password=args.password, signing_key=args.signing_key)
    phone.port = args.port
    phone.start()
    print(f"fake phone on {phone.url} (user {phone.user})", flush=True)
    told = 0
    try:
        while True:
            time.sleep(1)
            if len(phone.accepted) != told:
                told = len(phone.accepted)
                print(f"{time.strftime('%H:%M:%S')} {told} message(s) accepted", flush=True)
    except KeyboardInterrupt:
        phone.stop()


if __name__ == "__main__":
    main()
