"""What the phone tells us: signed webhook events, or its inbox read by polling; each handled once.

A received text goes to the SMS dialogue and its reply is queued at once (a local SIM channel
has no TwiML answer); sent/delivered/failed move the message record forward, never back.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from gateway import clock, conversation, messages, texts
from gateway.channels import TransportError
from gateway.channels import state as channel_state
from gateway.channels.android.transport import NAME, AndroidChannel
from gateway.context import Hotline
from gateway.phones import mask, try_normalise
from gateway.store import KEYS, first_seen, forget_seen

log = logging.getLogger(__name__)

# The app re-signs each retry, and phone clocks drift; a replay inside this window is caught
# by the event de-dup, which remembers ids longer (7 days).
MAX_SKEW = 3 * 86400
STATUS = {"sms:sent": "sent", "sms:delivered": "delivered", "sms:failed": "failed"}
OUR_ID = re.compile(r"^hl-(m\d+)-(\d+)$")
OVERLAP = 300          # seconds each poll looks back past the last one (the de-dup absorbs it)
FIRST_LOOK = 86400     # how far the very first poll looks back
PAGE = 100


def signature(key: str, body: bytes, timestamp: str) -> str:
    """The app's X-Signature: hex HMAC-SHA256 of the raw body followed by X-Timestamp."""
    return hmac.new(key.encode(), body + timestamp.encode(), hashlib.sha256).hexdigest()


def signed(key: str | None, body: bytes, timestamp: str, given: str) -> bool:
    if not key or not given or not timestamp.strip().isdigit():
        return False
    if abs(clock.timestamp() - int(timestamp.strip())) > MAX_SKEW:
        return False
    return hmac.compare_digest(signature(key, body, timestamp.strip()), given.strip().lower())


def handle_event(hl: Hotline, event: Mapping[str, Any]) -> str:
    """Handle one event; returns what happened: handled, duplicate, early, unknown, ignored."""
    event = texts.whole(dict(event))
    kind = str(event.get("event") or "")
    payload = event.get("payload")
    if not isinstance(payload, Mapping):
        return "ignored"
    event_id = str(event.get("id") or "")[:100]
    if kind == "sms:received":
        return _received(hl, event_id, payload)
    if kind in STATUS:
        return _status(hl, event_id, kind, payload)
    return "ignored"


def _when(raw: object) -> str:
    """receivedAt as epoch seconds, so a webhook's and the inbox's spellings of it agree."""
    text = str(raw or "")
    try:
        return str(int(datetime.fromisoformat(text).timestamp()))
    except ValueError:
        return text[:40]


def _received(hl: Hotline, event_id: str, p: Mapping[str, Any]) -> str:
    raw_sender = str(p.get("sender") or p.get("phoneNumber") or "").strip()[:40]
    text = p.get("message")
    if not raw_sender or not isinstance(text, str):
        return "ignored"
    sender = try_normalise(raw_sender, hl.settings.default_region) or raw_sender
    # The app's messageId hashes the content: with sender and time it names one delivery.
    content = str(p.get("messageId") or hashlib.sha1(text.encode()).hexdigest()[:16])[:64]
    content_key = f"{content}|{sender}|{_when(p.get('receivedAt'))}"
    claimed: list[tuple[str, str]] = []
    if event_id:
        if not first_seen(hl.r, "android-event", event_id):
            return "duplicate"
        claimed.append(("android-event", event_id))
    if not first_seen(hl.r, "android-sms", content_key):
        return "duplicate"
    claimed.append(("android-sms", content_key))
    try:
        reply = conversation.handle_text(hl, sender, text, channel=NAME,
                                         provider_id=event_id or content_key)
        conversation.queue_reply(hl, sender, reply)
    except Exception:
        for kind, ident in claimed:  # let the phone's retry (or the next poll) handle it
            forget_seen(hl.r, kind, ident)
        raise
    log.info("android: text from %s handled", mask(sender))
    return "handled"


def _status(hl: Hotline, event_id: str, kind: str, p: Mapping[str, Any]) -> str:
    ident = str(p.get("messageId") or "")[:64]
    record = _record(hl, ident)
    if record is None:
        return "unknown"
    if not record.provider_id and record.status in ("queued", "sending"):
        # The phone was quicker than our worker recording its answer: ask it to retry later,
        # or the worker's "sending" would overwrite this news.
        return "early"
    if event_id and not first_seen(hl.r, "android-event", event_id):
        return "duplicate"
    error = f"android: {str(p.get('reason') or 'failed')[:150]}" if kind == "sms:failed" else ""
    # sent and delivered may arrive together: one at a time, or the later write of the
    # lesser news ("sent") could land last.
    with hl.r.lock(KEYS.lock(f"status:{record.id}"), timeout=10, blocking_timeout=10):
        before = (messages.get(hl, record.id) or record).status
        updated = messages.record_delivery(hl, record.provider_id, STATUS[kind], error=error)
    if updated is None or updated.status == before:
        return "duplicate"  # a late or repeated report: a status never moves back
    log.info("android: %s %s", record.id, updated.status)
    return "handled"


def _record(hl: Hotline, ident: str) -> messages.Message | None:
    match = OUR_ID.match(ident)
    if match:
        record = messages.get(hl, match.group(1))
        if record is not None and int(record.created_at * 1000) == int(match.group(2)):
            return record
    return messages.by_provider_id(hl, ident) if ident else None


def poll(hl: Hotline, channel: AndroidChannel | None = None) -> int:
    """Read the phone's inbox since the last look (`GET /inbox`); returns how many texts were new.

    For when the phone's webhooks cannot reach the gateway. Safe beside working webhooks:
    an inbox entry and a webhook for the same text share one de-dup key.
    """
    channel = channel or AndroidChannel(hl)
    until = clock.now()
    cursor = channel_state.get_field(hl, NAME, "poll_cursor")
    since = (clock.from_timestamp(cursor) - timedelta(seconds=OVERLAP) if cursor
             else until - timedelta(seconds=FIRST_LOOK))
    handled = 0
    offset = 0
    try:
        while True:
            items = channel.inbox(since, until, limit=PAGE, offset=offset)
            for item in items:
                event = {"event": "sms:received", "payload": {
                    "messageId": item.get("id"), "message": item.get("contentPreview"),
                    "sender": item.get("sender"), "receivedAt": item.get("createdAt")}}
                handled += handle_event(hl, event) == "handled"
            if len(items) < PAGE:
                break
            offset += PAGE
    except TransportError as exc:
        channel_state.record_poll(hl, NAME, f"{exc.code} {exc}")
        raise
    channel_state.set_field(hl, NAME, "poll_cursor", str(until.timestamp()))
    channel_state.record_poll(hl, NAME)
    return handled
