"""SMS out through the phone's Local Server API (POST /messages), and the other calls we make to it.

Followed: SMS Gateway for Android (capcom6/android-sms-gateway at 0cdc5d8, app v1.68), its
swagger.json and its source: basic auth, `POST /messages` with `textMessage.text`,
`phoneNumbers`, our own `id` (202, or 409 for an id it has from v1.58) and a `ttl`;
`POST /webhooks` one event per registration; `GET /inbox` (from v1.59) whose `from`/`to` are
parsed with `yyyy-MM-dd'T'HH:mm:ss[.SSS]XXX` (helpers/DateTimeParser.kt); `GET /health`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import requests

from gateway import clock
from gateway.channels import Channel, Receipt, TransportError
from gateway.channels import state as channel_state
from gateway.context import Hotline
from gateway.messages import Message
from gateway.phones import mask

log = logging.getLogger(__name__)

NAME = "android"
EVENTS = ("sms:received", "sms:sent", "sms:delivered", "sms:failed")
# Refused for what the message itself is: sending it again can never help.
PERMANENT = (400, 413, 422)
# The app's message states (domain/ProcessingState.kt) as ours. Pending and Processed: the
# phone has it, not yet out. Cancelling/Cancelled: it expired (our ttl) or was cancelled on the
# phone; it will never go out, which for us is a failure the usual policy handles.
STATES = {"Pending": "sending", "Processed": "sending", "Sent": "sent", "Delivered": "delivered",
          "Failed": "failed", "Cancelling": "failed", "Cancelled": "failed"}
# How long a send may wait on the phone (its `ttl`), per what the message says: past this the
# phone drops it (Cancelled) rather than send news that is no longer true. Offers are cut to
# HOTLINE_ESCALATE_AFTER (see ttl()); the rest are good for a day at most.
TTL = {"reply": 3600, "help": 3600, "call_code": 3600, "gather": 1800, "reminder": 3600,
       "record": 3600, "optout": 86400, "notice": 86400}
DEFAULT_TTL = 86400
MIN_TTL = 60  # the app's own floor is 5 s; below a minute a phone with weak signal never sends
INBOX_SINCE = "1.59"  # GET /inbox exists from this app version on


def android_id(message: Message) -> str:
    """Our id for the message on the phone: the record id plus its creation time in ms.

    The same record always gets the same id, so a retry the phone already has is answered
    409; the time part keeps ids unique if the store is ever started afresh (m1, m2 ...).
    """
    return f"hl-{message.id}-{int(message.created_at * 1000)}"


def ttl(message: Message, escalate_after: int, now: float) -> int:
    """Seconds the phone may hold this message before giving up on it (the `ttl` we send).

    An offer ("who takes #1234?") or escalation is stale once the ticket escalates, so it
    expires no later than HOTLINE_ESCALATE_AFTER after it was written (what is left of it,
    a minute at least); everything else within a day (TTL).
    """
    from gateway.messages import OFFERS

    if message.kind in OFFERS:
        return max(MIN_TTL, int(message.created_at + escalate_after - now))
    return max(MIN_TTL, TTL.get(message.kind, DEFAULT_TTL))


def stamp(when: datetime) -> str:
    """A date as the app parses it: `yyyy-MM-dd'T'HH:mm:ss.SSS` and an offset, never microseconds."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.isoformat(timespec="milliseconds")


def webhook_id(event: str) -> str:
    """Our fixed id per event, so registering again replaces rather than adds."""
    return "hotline-" + event.replace(":", "-")


class AndroidChannel(Channel):
    name = NAME
    records_state = True  # send() keeps the channel's health itself (see channels.state)

    def __init__(self, hl: Hotline, *, connect_timeout: float = 5, read_timeout: float = 20) -> None:
        s = hl.settings
        if not s.android_gateway_url:
            raise TransportError("ANDROID_GATEWAY_URL is not set", permanent=True, code="config")
        self.hl = hl
        self.base = s.android_gateway_url.rstrip("/")
        self.auth = (s.android_gateway_user or "", s.android_gateway_password or "")
        self.timeout = (connect_timeout, read_timeout)
        self.session = requests.Session()  # one connection to the phone, kept between sends

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One call to the phone; an unreachable phone is a transient TransportError."""
        try:
            return self.session.request(method, self.base + path, auth=self.auth,
                                        timeout=self.timeout, **kwargs)
        except requests.Timeout:
            raise TransportError("the phone did not answer in time", permanent=False,
                                 code="timeout") from None
        except requests.RequestException as exc:
            raise TransportError(f"the phone is unreachable: {type(exc).__name__}",
                                 permanent=False, code="unreachable") from None

    def send(self, message: Message) -> Receipt:
        ident = android_id(message)
        expiry = ttl(message, self.hl.settings.escalate_after, clock.timestamp())
        body = {"id": ident, "textMessage": {"text": message.body}, "phoneNumbers": [message.to],
                "withDeliveryReport": True, "ttl": expiry}
        try:
            response = self._request("POST", "/messages", json=body)
            receipt = self._answer(response, ident)
        except TransportError as exc:
            if not exc.permanent:
                channel_state.record_failure(self.hl, self.name, f"{exc.code} {exc}")
            raise
        channel_state.record_ok(self.hl, self.name)
        log.info("android: %s to %s accepted as %s", message.id, mask(message.to), ident)
        return receipt

    def _answer(self, response: requests.Response, ident: str) -> Receipt:
        status = response.status_code
        if status in (200, 201, 202):
            return Receipt(provider_id=ident, status="sending")
        if status == 409:
            # The phone already has this id: an earlier attempt got through before we crashed
            # or timed out. It is sent (or on its way), so this is success, never a second copy.
            log.info("android: %s was already accepted (409)", ident)
            return Receipt(provider_id=ident, status="sending")
        detail = _message(response)
        if status in PERMANENT:
            raise TransportError(f"the phone refused the message: {detail}", permanent=True,
                                 code=str(status))
        if status in (401, 403):
            # Wrong login: an operator's fix, after which the waiting messages should still go.
            log.error("android: the phone refused our login (%d): check ANDROID_GATEWAY_USER "
                      "and ANDROID_GATEWAY_PASSWORD", status)
        raise TransportError(f"the phone answered {status}: {detail}", permanent=False,
                             code=str(status))

    def lookup(self, message: Message) -> Receipt | None:
        """The phone's record of this message (`GET /messages/{id}`), None if it never got it.

        Asked by the worker before a second attempt, so a message the phone took before a
        crash is recorded, not sent again (the 409 on a repeated id is the second safeguard).
        """
        ident = android_id(message)
        response = self._request("GET", f"/messages/{ident}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise TransportError(f"GET /messages answered {response.status_code}: "
                                 f"{_message(response)}", permanent=False,
                                 code=str(response.status_code))
        data = response.json()
        state = str(data.get("state") or "") if isinstance(data, dict) else ""
        return Receipt(provider_id=ident, status=STATES.get(state, "sending"))

    # --- the other calls: inbox, webhooks, health -------------------------------------------

    def inbox(self, since: datetime, until: datetime, *, limit: int = 100,
              offset: int = 0) -> list[dict[str, Any]]:
        """Received SMS whose network time is between `since` and `until`, newest first (`GET /inbox`).

        An app older than 1.59 has no inbox route and answers 404: a permanent error with
        code "old-app", said in words an operator can act on.
        """
        params: dict[str, str | int] = {"type": "SMS", "limit": limit, "offset": offset,
                                        "from": stamp(since), "to": stamp(until)}
        response = self._request("GET", "/inbox", params=params)
        if response.status_code == 404:
            raise TransportError(f"the phone has no inbox to read (GET /inbox answered 404): "
                                 f"its app is older than {INBOX_SINCE}; update SMS Gateway for "
                                 f"Android or rely on webhooks", permanent=True, code="old-app")
        if response.status_code != 200:
            raise TransportError(f"GET /inbox answered {response.status_code}: "
                                 f"{_message(response)}", permanent=False,
                                 code=str(response.status_code))
        data = response.json()
        if not isinstance(data, list):
            raise TransportError("GET /inbox did not answer a list", permanent=False, code="format")
        return [item for item in data if isinstance(item, dict)]

    def register_webhooks(self, url: str) -> list[str]:
        """Point the phone's four SMS events at `url`; returns the ids registered."""
        done = []
        for event in EVENTS:
            ident = webhook_id(event)
            response = self._request("POST", "/webhooks",
                                     json={"id": ident, "url": url, "event": event})
            if response.status_code not in (200, 201, 202):
                raise TransportError(f"registering {event} answered {response.status_code}: "
                                     f"{_message(response)}", permanent=True,
                                     code=str(response.status_code))
            done.append(ident)
        return done

    def health(self) -> dict[str, Any]:
        """The phone's own health (`GET /health`, sends nothing): status, version, checks.

        The app answers 500 when a check fails, with the same body; both are news, not errors.
        """
        response = self._request("GET", "/health")
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise TransportError(f"GET /health answered {response.status_code}: "
                                 f"{response.text[:80]}", permanent=False,
                                 code=str(response.status_code))
        checks = data.get("checks") if isinstance(data.get("checks"), dict) else {}
        failing = sorted(str(k) for k, v in (checks or {}).items()
                         if isinstance(v, dict) and str(v.get("status")) in ("warn", "fail"))
        return {"status": str(data.get("status") or "unknown"),
                "version": str(data["version"]) if data.get("version") else None,
                "checks_not_passing": failing}

    def webhooks(self) -> list[dict[str, Any]]:
        response = self._request("GET", "/webhooks")
        data = response.json() if response.status_code == 200 else []
        return [w for w in data if isinstance(w, dict)] if isinstance(data, list) else []


def _message(response: requests.Response) -> str:
    """The phone's own words for an error (`{"message": ...}`), short."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:120]
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])[:120]
    return str(data)[:120]
