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
from gateway.store import KEYS, SEEN_TTL, claim, locked, unclaim

log = logging.getLogger(__name__)

# The app re-signs each retry, and phone clocks drift; a replay inside this window is caught
# by the event de-dup, which remembers ids longer (7 days).
MAX_SKEW = 3 * 86400
STATUS = {"sms:sent": "sent", "sms:delivered": "delivered", "sms:failed": "failed"}
OUR_ID = re.compile(r"^hl-(m\d+)-(\d+)$")
HEX = re.compile(r"^[0-9a-fA-F]{1,8}$")
INBOX_ID = re.compile(r"^text:(-?\d{1,11})$")
# The inbox filters on the network's timestamp, which can be hours or days before the text
# reached a phone that was off or out of coverage: so every poll reads this whole window of
# network time (newest first) rather than "since the last poll", and the de-dup (which
# remembers a text for SEEN_TTL, longer than this) lets each text through once.
LOOK_BACK = 3 * 86400
FIRST_LOOK = 86400     # a new installation answers texts of the last day, not of three
AHEAD = 86400          # the network's clock may run ahead of ours: read that far past now
PAGE = 500             # the app's largest page
MAX_PAGES = 20         # 10 000 texts in three days is far past a village line: a bound, logged


def signature(key: str, body: bytes, timestamp: str) -> str:
    """The app's X-Signature: hex HMAC-SHA256 of the raw body followed by X-Timestamp."""
    return hmac.new(key.encode(), body + timestamp.encode(), hashlib.sha256).hexdigest()


def signed(key: str | None, body: bytes, timestamp: str, given: str) -> bool:
    if not key or not given or not timestamp.strip().isdigit():
        return False
    if abs(clock.timestamp() - int(timestamp.strip())) > MAX_SKEW:
        return False
    return hmac.compare_digest(signature(key, body, timestamp.strip()), given.strip().lower())


def signer(hl: Hotline, body: bytes, timestamp: str, given: str) -> str | None:
    """The Android sender whose phone signed this post (each phone has its own key), or None."""
    from gateway.channels import senders_of

    # Without an Android sender the phone may still be there for texts coming in.
    phones = [(s.name, own) for s, own in senders_of(hl, "android")] or [(NAME, hl)]
    for name, own in phones:
        if signed(own.settings.android_gateway_signing_key, body, timestamp, given):
            return name
    return None


def handle_event(hl: Hotline, event: Mapping[str, Any], via: str = NAME) -> str:
    """Handle one event that the phone of sender `via` sent; returns what happened: handled,
    duplicate, early, unknown, ignored."""
    event = texts.whole(dict(event))
    kind = str(event.get("event") or "")
    payload = event.get("payload")
    if not isinstance(payload, Mapping):
        return "ignored"
    event_id = str(event.get("id") or "")[:100]
    if kind == "sms:received":
        return _received(hl, event_id, payload, via)
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


def canonical(ident: str) -> str:
    """One spelling of the app's id for a received text, whichever way it came.

    The webhook's `messageId` is the text's 32-bit hash as unsigned hex
    (`hashCode().toUInt().toString(16)`), the inbox's `id` is `"text:" + hashCode()`, signed
    decimal: both become the unsigned hex the webhook uses (so keys written before stay valid).
    """
    ident = ident.strip()
    match = INBOX_ID.match(ident)
    if match:
        return format(int(match.group(1)) & 0xFFFFFFFF, "x")
    if HEX.match(ident):
        return format(int(ident, 16), "x")
    return ident[:64]


def content_key(hl: Hotline, p: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(sender, text, de-dup key) of a received text, or None if it is not one."""
    raw_sender = str(p.get("sender") or p.get("phoneNumber") or "").strip()[:40]
    text = p.get("message")
    if not raw_sender or not isinstance(text, str):
        return None
    sender = try_normalise(raw_sender, hl.settings.default_region) or raw_sender
    # The app's messageId hashes the content: with sender and network time it names one text.
    content = canonical(str(p.get("messageId") or "")) or hashlib.sha1(text.encode()).hexdigest()[:16]
    return sender, text, f"{content}|{sender}|{_when(p.get('receivedAt'))}"


def _received(hl: Hotline, event_id: str, p: Mapping[str, Any], via: str) -> str:
    found = content_key(hl, p)
    if found is None:
        return "ignored"
    sender, text, content_key_ = found
    claimed: list[tuple[str, str]] = []
    if event_id:
        if not claim(hl.r, KEYS.seen("android-event", event_id), ttl=SEEN_TTL):
            return "duplicate"
        claimed.append(("android-event", event_id))
    if not claim(hl.r, KEYS.seen("android-sms", content_key_), ttl=SEEN_TTL):
        return "duplicate"
    claimed.append(("android-sms", content_key_))
    try:
        reply = conversation.handle_text(hl, sender, text, channel=via,
                                         provider_id=event_id or content_key_)
        conversation.queue_reply(hl, sender, reply, via=via)
    except Exception:
        for kind, ident in claimed:  # let the phone's retry (or the next poll) handle it
            unclaim(hl.r, KEYS.seen(kind, ident))
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
    if event_id and not claim(hl.r, KEYS.seen("android-event", event_id), ttl=SEEN_TTL):
        return "duplicate"
    error = f"android: {str(p.get('reason') or 'failed')[:150]}" if kind == "sms:failed" else ""
    status = STATUS[kind]
    # sent and delivered may arrive together: one at a time, or the later write of the
    # lesser news ("sent") could land last.
    with locked(hl.r, f"status:{record.id}", ttl=10, wait=10, busy="raise"):
        if not _all_parts(hl, record, kind, p):
            status = "sent"  # one part of a long text arrived: it is out, not yet all there
        before = (messages.get(hl, record.id) or record).status
        updated = messages.record_delivery(hl, record.provider_id, status, error=error)
    if updated is None or updated.status == before:
        return "duplicate"  # a late or repeated report: a status never moves back
    log.info("android: %s %s", record.id, updated.status)
    return "handled"


def _all_parts(hl: Hotline, record: messages.Message, kind: str, p: Mapping[str, Any]) -> bool:
    """For sms:delivered, whether every part of the text is now reported delivered.

    The app sends sms:delivered once per part of a long text; sms:sent carries `partsCount`.
    Until that is known (the two may cross), our own count of the text's parts stands in.
    """
    key = KEYS.parts(record.id)
    if kind == "sms:sent":
        parts = p.get("partsCount")
        if isinstance(parts, int) and parts > 0:
            hl.r.hset(key, "parts", str(parts))
            hl.r.expire(key, 7 * 86400)
        return True
    if kind != "sms:delivered":
        return True
    delivered = int(hl.r.hincrby(key, "delivered", 1))
    hl.r.expire(key, 7 * 86400)
    parts = int(hl.r.hget(key, "parts") or 0) or texts.segments(record.body)
    return delivered >= parts


def _record(hl: Hotline, ident: str) -> messages.Message | None:
    match = OUR_ID.match(ident)
    if match:
        record = messages.get(hl, match.group(1))
        if record is not None and int(record.created_at * 1000) == int(match.group(2)):
            return record
    return messages.by_provider_id(hl, ident) if ident else None


def _item_event(item: Mapping[str, Any]) -> dict[str, Any]:
    """An inbox entry in the shape of the sms:received webhook it stands for."""
    return {"event": "sms:received", "payload": {
        "messageId": item.get("id"), "message": item.get("contentPreview"),
        "sender": item.get("sender"), "receivedAt": item.get("createdAt")}}


def _unseen(hl: Hotline, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries whose text was not handled yet: one pipelined look, no writes."""
    events = [_item_event(item) for item in items]
    keys = [content_key(hl, e["payload"]) for e in events]
    pipe = hl.r.pipeline(transaction=False)
    for key in keys:
        pipe.exists(KEYS.seen("android-sms", key[2] if key else "-"))
    return [e for e, k, seen in zip(events, keys, pipe.execute(), strict=True) if k and not seen]


def poll(hl: Hotline, channel: AndroidChannel | None = None, name: str = NAME) -> int:
    """Read the inbox (`GET /inbox`) of the phone of sender `name`; returns how many texts
    were new.

    For when the phone's webhooks cannot reach the gateway, and safe beside working ones: an
    inbox entry and a webhook for the same text share one de-dup key. Each poll reads the
    last LOOK_BACK of network time, newest first, page by page: a text that reached the
    phone hours after the network stamped it is still in the window. Paging by offset while
    texts arrive can only show an entry twice (new ones push the rest down), never skip one.
    """
    channel = channel or AndroidChannel(hl)
    now = clock.now()
    floor = channel_state.get_field(hl, name, "poll_floor")
    if floor is None:
        floor = str((now - timedelta(seconds=FIRST_LOOK)).timestamp())
        channel_state.set_field(hl, name, "poll_floor", floor)
    since = max(now - timedelta(seconds=LOOK_BACK), clock.from_timestamp(floor))
    until = now + timedelta(seconds=AHEAD)
    handled = read = 0
    try:
        for page in range(MAX_PAGES):
            items = channel.inbox(since, until, limit=PAGE, offset=page * PAGE)
            read += len(items)
            for event in _unseen(hl, items):
                handled += handle_event(hl, event, name) == "handled"
            if len(items) < PAGE:
                break
        else:
            log.warning("android: more than %d texts in the inbox window; read the newest only",
                        PAGE * MAX_PAGES)
    except TransportError as exc:
        channel_state.record_poll(hl, name, f"{exc.code} {exc}")
        channel_state.set_field(hl, name, "inbox", "missing" if exc.code == "old-app" else "error")
        raise
    channel_state.record_poll(hl, name)
    channel_state.set_field(hl, name, "inbox", "ok")
    channel_state.set_field(hl, name, "poll_result", f"{handled} new of {read} read")
    return handled
