"""Message records: every SMS in or out, with its channel, attempts, provider id and delivery status."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from gateway import clock, jobs
from gateway.context import Hotline
from gateway.lua import Script, flat, pairs
from gateway.phones import mask
from gateway.store import KEYS

log = logging.getLogger(__name__)

# queued -> sending -> sent -> delivered | undelivered | failed; or optedout; inbound: received
STATUSES = ("queued", "sending", "sent", "delivered", "undelivered", "failed", "optedout",
            "received")
FINAL = ("delivered", "undelivered", "failed", "optedout", "received")
# Kinds that still go to a number that texted STOP.
ALWAYS_SENT = ("optout",)


@dataclass(frozen=True)
class Message:
    id: str
    direction: str
    to: str
    body: str
    kind: str
    status: str
    created_at: float
    sender: str = ""
    channel: str = ""
    ticket: str = ""
    notice: str = ""
    attempts: int = 0
    provider_id: str = ""
    error: str = ""
    updated_at: float | None = None
    via: str = ""  # a reply: the sender its text came in by, which it goes back through
    waiting: str = ""  # why no sender has taken it yet (caps, quiet hours, outages)

    @classmethod
    def from_hash(cls, d: dict[str, str]) -> Message:
        return cls(
            id=d["id"], direction=d.get("direction", "out"), to=d.get("to", ""),
            body=d.get("body", ""), kind=d.get("kind", ""), status=d.get("status", "queued"),
            created_at=float(d.get("created_at") or 0), sender=d.get("sender", ""),
            channel=d.get("channel", ""), ticket=d.get("ticket", ""), notice=d.get("notice", ""),
            attempts=int(d.get("attempts") or 0), provider_id=d.get("provider_id", ""),
            error=d.get("error", ""),
            updated_at=float(d["updated_at"]) if d.get("updated_at") else None,
            via=d.get("via", ""), waiting=d.get("waiting", ""),
        )

    def to_json(self, hl: Hotline) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = clock.local_iso(self.created_at, hl.settings.tz)
        data["updated_at"] = clock.local_iso(self.updated_at, hl.settings.tz)
        return data


def get(hl: Hotline, mid: str) -> Message | None:
    data = hl.r.hgetall(KEYS.message(mid))
    return Message.from_hash(data) if data else None


def by_provider_id(hl: Hotline, provider_id: str) -> Message | None:
    mid = hl.r.get(KEYS.message_by_sid(provider_id))
    return get(hl, mid) if mid else None


def opted_out(hl: Hotline, phone: str) -> bool:
    return bool(hl.r.sismember(KEYS.optout, phone))


def set_opt_out(hl: Hotline, phone: str, out: bool) -> None:
    if out:
        hl.r.sadd(KEYS.optout, phone)
    else:
        hl.r.srem(KEYS.optout, phone)


# Every record is written by messages.record.lib.lua's `record_message`, here and in the
# inbound-text intake (conversation.intake.lua), so a record is written one way.
_RECORD = Script(__name__, "record")


def record(fields: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """(the argument of `record_message` (messages.record.lib.lua), the record but its id)."""
    now = str(clock.timestamp())
    full = {"created_at": now, "updated_at": now, **fields}
    provider_id = full.get("provider_id", "")
    return {"seq": KEYS.seq("message"), "all": KEYS.messages, "key": KEYS.message("{id}"),
            "status_index": KEYS.messages_by_status(full["status"]),
            "sid_key": KEYS.message_by_sid(provider_id) if provider_id else "", "now": now,
            "fields": flat(full)}, full


def _new(hl: Hotline, fields: dict[str, str]) -> Message:
    spec, full = record(fields)
    mid = _RECORD(hl.r, record=spec)
    return Message.from_hash({**full, "id": str(mid)})


def inbound(sender: str, body: str, *, channel: str, provider_id: str = "",
            to: str = "") -> dict[str, str]:
    """The fields of a text received."""
    return {"direction": "in", "to": to, "sender": sender, "body": body, "kind": "inbound",
            "status": "received", "channel": channel, "provider_id": provider_id}


def queue_sms(hl: Hotline, to: str, body: str, *, kind: str, ticket: str = "",
              notice: str = "", delay: float | None = None, job: str = "", via: str = "") -> Message:
    """Record an outbound SMS and queue its sending; a number that opted out gets nothing.

    With `job`, nothing is queued: the record names that running job, which makes the first
    attempt itself (workers.messages.send_inline); the sweeper redoes it if that job dies.
    `via`: the sender a text came in by, for its reply to go back through.
    """
    status = "queued"
    if kind not in ALWAYS_SENT and opted_out(hl, to):
        status = "optedout"
    fields = {"direction": "out", "to": to, "body": body, "kind": kind, "status": status,
              "ticket": ticket, "notice": notice, "attempts": "0",
              # which sender carries it is routing's choice, at send (a pool of one: its one)
              "channel": hl.pool[0].name if len(hl.pool) == 1 else "", "via": via}
    message = _new(hl, fields | {"job": job} if job else fields)
    if status == "queued" and not job:
        jobs.send(hl, message.id, delay=delay)
    log.info("sms %s to %s: %s (%s)", message.id, mask(to), kind, status)
    return message


def update(hl: Hotline, mid: str, **changes: str | int) -> Message | None:
    """Change a record's fields; a status change moves it between the status indexes.

    One Lua script, so two updates at once never leave a message in two status indexes.
    None when there is no such record (nothing is written then).
    """
    return _set(hl, mid, changes)[0]


def advance(hl: Hotline, mid: str, status: str, **changes: str | int) -> Message | None:
    """Set `changes`, and `status` only if it moves the record forward (RANK): a provider's
    late report never takes a delivered message back to sent."""
    return _set(hl, mid, {**changes, "status": status}, forward=True)[0]


# Every change to a message record, in one round trip: see messages.update.lua.
_UPDATE = Script(__name__, "update")


def _set(hl: Hotline, mid: str, changes: Mapping[str, str | int], *, forward: bool = False,
         missing: Mapping[str, str] | None = None) -> tuple[Message | None, bool]:
    """Run messages.update.lua: (the record as it is now, whether its status moved)."""
    fields = {k: str(v) for k, v in changes.items() if k != "status"}
    spec: dict[str, Any] = {
        "id": mid, "now": str(clock.timestamp()), "forward": forward, "ranks": RANK,
        "fields": flat(fields),
        "missing": flat(missing or {}),
        "index": KEYS.messages_by_status("{status}"), "sid_key": KEYS.message_by_sid("{sid}"),
    }
    if "status" in changes:
        spec["status"] = str(changes["status"])
    found = _UPDATE(hl.r, key=KEYS.message(mid), change=spec)
    if not found:
        return None, False
    moved, hashed = found
    return Message.from_hash(pairs(hashed)), bool(moved)


def list_messages(hl: Hotline, *, status: str | None = None, limit: int = 200,
                  since: float | None = None) -> list[Message]:
    key = KEYS.messages_by_status(status) if status else KEYS.messages
    ids = hl.r.zrevrangebyscore(key, "+inf", since if since is not None else "-inf",
                                start=0, num=limit)
    pipe = hl.r.pipeline(transaction=False)
    for mid in ids:
        pipe.hgetall(KEYS.message(mid))
    return [Message.from_hash(d) for d in pipe.execute() if d]


def outbox(hl: Hotline, phone: str, limit: int = 50) -> list[Message]:
    """What the outbox channel 'delivered' to a number, newest first (the simulator's inbox)."""
    ids = hl.r.lrange(KEYS.outbox(phone), 0, limit - 1)
    pipe = hl.r.pipeline(transaction=False)
    for mid in ids:
        pipe.hgetall(KEYS.message(mid))
    return [Message.from_hash(d) for d in pipe.execute() if d]


# A provider's delivery statuses as ours; the others (queued, accepted, sending) say only that
# the provider has the message. A status never moves back: a late "sent" after "delivered"
# changes nothing.
PROVIDER_STATUS = {"sent": "sent", "delivered": "delivered", "read": "delivered",
                   "undelivered": "undelivered", "failed": "failed", "canceled": "failed"}
RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "undelivered": 3, "failed": 3,
        "optedout": 3}
# Kinds whose bounce means the ticket must be offered to someone else.
OFFERS = ("offer", "escalation")


def record_delivery(hl: Hotline, provider_id: str, status: str, *, error: str = "",
                    mid: str = "") -> Message | None:
    """A provider's status report, recorded on its message; an offer that bounced is offered on.

    The message is found by provider id, else by our id `mid` (carried in the callback URL)
    when that record has no provider id yet: its worker died before writing it down.
    """
    message = by_provider_id(hl, provider_id) if provider_id else None
    if message is None and mid:
        candidate = get(hl, mid)
        if candidate and candidate.direction == "out" and not candidate.provider_id:
            message = candidate
    if message is None:
        return None
    ours = PROVIDER_STATUS.get(status.lower(), "sent" if provider_id else "")
    # Judged on the record as it is inside the script: two reports at once never move it back.
    changes: dict[str, str | int] = {"status": ours} if ours else {}
    if error and ours in ("undelivered", "failed"):
        changes["error"] = error
    updated, moved = _set(hl, message.id, changes, forward=True,
                          missing={"provider_id": provider_id} if provider_id else None)
    if not moved:
        return updated
    log.info("sms %s to %s: provider says %s", message.id, mask(message.to), status)
    if ours in ("undelivered", "failed") and message.kind in OFFERS and message.ticket:
        jobs.offer_next(hl, message.ticket, message.id)
    return updated
