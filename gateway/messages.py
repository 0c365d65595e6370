"""Message records: every SMS in or out, with its channel, attempts, provider id and delivery status."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from gateway import clock, jobs
from gateway.context import Hotline
from gateway.phones import mask
from gateway.store import FILL_LUA, KEYS

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


# Lua: store a message record under a new id ("m" + the message counter): its hash, the time
# index, its status index and the provider id's pointer. Shared by `_new` and the inbound-text
# intake (gateway/conversation.py), so a record is written one way.
RECORD_LUA = """
-- m: seq, all, key ({id}), status_index, sid_key ({id} or ''), now, fields (flat list)
local function record_message(m)
    local mid = 'm' .. redis.call('INCR', m.seq)
    local fields = m.fields
    fields[#fields + 1] = 'id'
    fields[#fields + 1] = mid
    redis.call('HSET', fill(m.key, '{id}', mid), unpack(fields))
    redis.call('ZADD', m.all, m.now, mid)
    redis.call('ZADD', m.status_index, m.now, mid)
    if m.sid_key ~= '' then redis.call('SET', m.sid_key, mid) end
    return mid
end
"""
_RECORD = FILL_LUA + RECORD_LUA + "return record_message(cjson.decode(ARGV[1]))"


def record(fields: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """(the argument of RECORD_LUA's `record_message`, the record but its id) for `fields`."""
    now = str(clock.timestamp())
    full = {"created_at": now, "updated_at": now, **fields}
    provider_id = full.get("provider_id", "")
    return {"seq": KEYS.seq("message"), "all": KEYS.messages, "key": KEYS.message("{id}"),
            "status_index": KEYS.messages_by_status(full["status"]),
            "sid_key": KEYS.message_by_sid(provider_id) if provider_id else "", "now": now,
            "fields": [x for pair in full.items() for x in pair]}, full


def _new(hl: Hotline, fields: dict[str, str]) -> Message:
    spec, full = record(fields)
    mid = hl.script(_RECORD)(args=[json.dumps(spec, ensure_ascii=False)])
    return Message.from_hash({**full, "id": str(mid)})


def inbound(sender: str, body: str, *, channel: str, provider_id: str = "",
            to: str = "") -> dict[str, str]:
    """The fields of a text received."""
    return {"direction": "in", "to": to, "sender": sender, "body": body, "kind": "inbound",
            "status": "received", "channel": channel, "provider_id": provider_id}


def queue_sms(hl: Hotline, to: str, body: str, *, kind: str, ticket: str = "",
              notice: str = "", delay: float | None = None, job: str = "") -> Message:
    """Record an outbound SMS and queue its sending; a number that opted out gets nothing.

    With `job`, nothing is queued: the record names that running job, which makes the first
    attempt itself (workers.messages.send_inline); the sweeper redoes it if that job dies.
    """
    status = "queued"
    if kind not in ALWAYS_SENT and opted_out(hl, to):
        status = "optedout"
    fields = {"direction": "out", "to": to, "body": body, "kind": kind, "status": status,
              "ticket": ticket, "notice": notice, "channel": hl.settings.sms_channel,
              "attempts": "0"}
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


# Lua: every change to a message record, in one round trip. It sets `fields`, and `missing`
# only where the record has none; with `forward`, the status only if it ranks above the
# record's own (RANK). A status change moves the record between status indexes; a provider id
# written gets its pointer. Nothing to change: nothing written. Returns {moved, the record}.
_SET = FILL_LUA + """
local c = cjson.decode(ARGV[1])
local key = KEYS[1]
local old = redis.call('HGET', key, 'status')
if not old then return false end
local fields = c.fields
for i = 1, #c.missing, 2 do
    local have = redis.call('HGET', key, c.missing[i])
    if not have or have == '' then
        fields[#fields + 1] = c.missing[i]
        fields[#fields + 1] = c.missing[i + 1]
    end
end
local status = c.status
if status and c.forward and (c.ranks[status] or 0) <= (c.ranks[old] or 0) then status = nil end
local moved = status ~= nil and status ~= old
if status then
    fields[#fields + 1] = 'status'
    fields[#fields + 1] = status
end
if #fields > 0 then
    fields[#fields + 1] = 'updated_at'
    fields[#fields + 1] = c.now
    redis.call('HSET', key, unpack(fields))
    for i = 1, #fields, 2 do
        if fields[i] == 'provider_id' and fields[i + 1] ~= '' then
            redis.call('SET', fill(c.sid_key, '{sid}', fields[i + 1]), c.id)
        end
    end
end
if moved then
    local created = redis.call('HGET', key, 'created_at') or c.now
    redis.call('ZREM', fill(c.index, '{status}', old), c.id)
    redis.call('ZADD', fill(c.index, '{status}', status), created, c.id)
end
return {moved and 1 or 0, redis.call('HGETALL', key)}
"""


def _set(hl: Hotline, mid: str, changes: Mapping[str, str | int], *, forward: bool = False,
         missing: Mapping[str, str] | None = None) -> tuple[Message | None, bool]:
    """Run _SET: (the record as it is now, whether its status moved)."""
    fields = {k: str(v) for k, v in changes.items() if k != "status"}
    spec: dict[str, Any] = {
        "id": mid, "now": str(clock.timestamp()), "forward": forward, "ranks": RANK,
        "fields": [x for pair in fields.items() for x in pair],
        "missing": [x for pair in (missing or {}).items() for x in pair],
        "index": KEYS.messages_by_status("{status}"), "sid_key": KEYS.message_by_sid("{sid}"),
    }
    if "status" in changes:
        spec["status"] = str(changes["status"])
    found = hl.script(_SET)(keys=[KEYS.message(mid)], args=[json.dumps(spec, ensure_ascii=False)])
    if not found:
        return None, False
    moved, flat = found
    return Message.from_hash(dict(zip(flat[::2], flat[1::2], strict=True))), bool(moved)


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
