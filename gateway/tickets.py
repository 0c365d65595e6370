"""Help tickets: opened from a call or text, offered, taken, closed; every change atomic in Redis."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import WatchError

from gateway import clock, jobs, registry
from gateway.context import Hotline
from gateway.phones import mask
from gateway.registry import Person
from gateway.store import FILL_LUA, KEYS, Pipeline, Redis

log = logging.getLogger(__name__)

MENU = {"1": "medicine", "2": "food", "3": "doctor", "4": "vaccination", "5": "utilities",
        "9": "voicemail"}
CATEGORIES = (*MENU.values(), "callback", "other")
STATUSES = ("new", "notified", "accepted", "done", "cancelled")
OPEN = ("new", "notified", "accepted")
WAITING = ("new", "notified")
CHANNELS = ("voice", "sms", "missed_call")
TRIAGE = "triage"
FIRST_CODE = 1000


class TicketError(Exception):
    """A change that cannot be made; `reason` is a short word the callers map to a message."""

    def __init__(self, reason: str, ticket: Ticket | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.ticket = ticket


@dataclass(frozen=True)
class Ticket:
    code: str
    status: str
    category: str
    channel: str
    caller: str
    created_at: float
    caller_name: str = ""
    village_id: str = ""
    village: str = ""
    town: str = ""
    grid: str = ""
    text: str = ""
    recording_url: str = ""
    escalated: bool = False
    escalation_level: int = 0
    accepted_by: str = ""
    accepted_at: float | None = None
    closed_at: float | None = None
    updated_at: float | None = None
    language: str = ""
    call_sid: str = ""

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    @property
    def is_triage(self) -> bool:
        return self.village_id in ("", TRIAGE)

    @classmethod
    def from_hash(cls, d: dict[str, str]) -> Ticket:
        def num(key: str) -> float | None:
            return float(d[key]) if d.get(key) else None

        return cls(
            code=d["code"], status=d["status"], category=d.get("category", "other"),
            channel=d.get("channel", "sms"), caller=d.get("caller", ""),
            created_at=float(d.get("created_at") or 0), caller_name=d.get("caller_name", ""),
            village_id=d.get("village_id", ""), village=d.get("village", ""),
            town=d.get("town", ""), grid=d.get("grid", ""), text=d.get("text", ""),
            recording_url=d.get("recording_url", ""), escalated=d.get("escalated") == "1",
            escalation_level=int(d.get("escalation_level") or 0),
            accepted_by=d.get("accepted_by", ""), accepted_at=num("accepted_at"),
            closed_at=num("closed_at"), updated_at=num("updated_at"),
            language=d.get("language", ""), call_sid=d.get("call_sid", ""),
        )

    def to_json(self, hl: Hotline) -> dict[str, Any]:
        """The contract's JSON of a ticket (plus a few extra fields)."""
        tz = hl.settings.tz
        return {
            "code": self.code, "status": self.status, "escalated": self.escalated,
            "category": self.category, "channel": self.channel,
            "village": None if self.is_triage else self.village,
            "grid": None if self.is_triage else (self.grid or None),
            "caller": self.caller, "caller_name": self.caller_name or None,
            "text": self.text or None, "recording_url": self.recording_url or None,
            "created_at": clock.local_iso(self.created_at, tz),
            "accepted_by": self.accepted_by or None,
            "accepted_at": clock.local_iso(self.accepted_at, tz),
            "closed_at": clock.local_iso(self.closed_at, tz),
            "escalation_level": self.escalation_level,
        }


def get(hl: Hotline, code: str) -> Ticket | None:
    code = code.strip().lstrip("#")
    if not code.isdigit():
        return None
    data = hl.r.hgetall(KEYS.ticket(code))
    return Ticket.from_hash(data) if data else None


def history(hl: Hotline, code: str) -> list[dict[str, Any]]:
    return [json.loads(e) for e in hl.r.lrange(KEYS.history(code), 0, -1)]


def _entry(who: str, what: str, note: str = "") -> str:
    return json.dumps({"at": clock.timestamp(), "who": who, "what": what, "note": note},
                      ensure_ascii=False)


_LOOK_UP = object()  # open_ticket's default: find the caller in the registry itself

# Lua: allocate the next code and store a new ticket with its indexes and first history entry,
# and put its code on the intake list (when notify), in one atomic step. Key names come from
# store.KEYS: fixed ones as KEYS, per-code ones as templates with "{code}" in ARGV. Shared by
# open_ticket and the SMS intake script (gateway/conversation.py), so a ticket is written one way.
OPEN_LUA = """
-- k: seq, tickets, new-status index, village index, caller index, intake;
-- a: ticket template, history template, first code, now, notify, history entry, fields...
local function open_ticket(k, a, from)
    local code = tostring(tonumber(a[3]) + redis.call('INCR', k[1]))
    local fields = {'code', code}
    for i = from, #a do fields[#fields + 1] = a[i] end
    redis.call('HSET', fill(a[1], '{code}', code), unpack(fields))
    for i = 2, 5 do redis.call('ZADD', k[i], a[4], code) end
    redis.call('RPUSH', fill(a[2], '{code}', code), a[6])
    if a[5] == '1' then redis.call('LPUSH', k[6], code) end
    return code
end
"""
_OPEN_MAIN = "return open_ticket(KEYS, ARGV, 7)"
_OPEN = FILL_LUA + OPEN_LUA + _OPEN_MAIN


def new_ticket(hl: Hotline, caller: str, category: str, channel: str, person: Person | None, *,
               text: str = "", recording_url: str = "", call_sid: str = "",
               notify: bool = True) -> tuple[list[str], list[str], dict[str, str]]:
    """(keys, args, fields) for OPEN_LUA's `open_ticket`: everything a new ticket is but its code."""
    if category not in CATEGORIES:
        category = "other"
    now = str(clock.timestamp())
    vid = person.village_id if person and person.village_id else TRIAGE
    fields = {
        "status": "new", "category": category, "channel": channel,
        "caller": caller, "caller_name": person.name if person else "",
        "village_id": vid, "village": person.village if person and vid != TRIAGE else "",
        "town": person.town if person else "", "grid": person.grid if person else "",
        "text": text, "recording_url": recording_url, "created_at": now,
        "updated_at": now, "escalated": "0", "escalation_level": "0",
        "language": (person.language if person else "") or hl.settings.language,
        "call_sid": call_sid,
    }
    keys = [KEYS.seq("ticket"), KEYS.tickets, KEYS.tickets_by_status("new"),
            KEYS.tickets_by_village(vid), KEYS.tickets_by_caller(caller), KEYS.intake]
    args = [KEYS.ticket("{code}"), KEYS.history("{code}"), str(FIRST_CODE), now,
            "1" if notify else "0", _entry(caller, "opened", f"{channel}/{category}"),
            *(x for pair in fields.items() for x in pair)]
    return keys, args, fields


def opened(hl: Hotline, code: str, fields: dict[str, str]) -> Ticket:
    """The ticket `open_ticket` (or the SMS intake) stored under `code`."""
    ticket = Ticket.from_hash({**fields, "code": code})
    if log.isEnabledFor(logging.INFO):
        log.info("ticket #%s opened: %s %s from %s", code, ticket.channel, ticket.category,
                 mask(ticket.caller))
    return ticket


def open_ticket(hl: Hotline, caller: str, category: str, channel: str, *, text: str = "",
                recording_url: str = "", call_sid: str = "", notify: bool = True,
                person: Person | object | None = _LOOK_UP) -> Ticket:
    """Store a new ticket with its indexes and first history entry, in one atomic step.

    With `notify`, its code goes on the intake list in the same step: a worker's ticker
    turns it into the offer job within a tenth of a second (workers.service), and the
    sweeper re-offers a ticket still new after HOTLINE_SWEEP_AFTER. `person`: the caller's
    registry row when the caller already has it (None: not registered), saving a lookup.
    """
    if person is _LOOK_UP:
        person = registry.person(hl.r, caller)
    assert person is None or isinstance(person, Person)
    keys, args, fields = new_ticket(hl, caller, category, channel, person, text=text,
                                    recording_url=recording_url, call_sid=call_sid,
                                    notify=notify)
    code = str(hl.script(_OPEN)(keys=keys, args=args))
    return opened(hl, code, fields)


def open_ticket_of(hl: Hotline, caller: str, within: float | None = None) -> Ticket | None:
    """The caller's newest open ticket (opened within `within` seconds, when given)."""
    since = clock.timestamp() - within if within is not None else "-inf"
    for code in hl.r.zrevrangebyscore(KEYS.tickets_by_caller(caller), "+inf", since):
        t = get(hl, code)
        if t and t.is_open:
            return t
    return None


def _transition(hl: Hotline, code: str, allowed: Iterable[str],
                decide: Callable[[Ticket], dict[str, str] | None],
                new_status: str | None, fields: dict[str, str], entry: str,
                extra: Callable[[Pipeline, Ticket], None] | None = None) -> Ticket:
    """Change a ticket if its status is in `allowed`, atomically (WATCH/MULTI, retried).

    `decide` sees the ticket as it is inside the transaction: it may refuse (raise
    TicketError) or return fields computed from it.
    """
    key = KEYS.ticket(code)
    allowed = tuple(allowed)
    with hl.r.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(key)
                data = pipe.hgetall(key)
                if not data:
                    raise TicketError("unknown")
                before = Ticket.from_hash(data)
                if before.status not in allowed:
                    raise TicketError(before.status, before)
                computed = decide(before) or {}
                now = clock.timestamp()
                changes = {**fields, **computed, "updated_at": str(now)}
                if new_status:
                    changes["status"] = new_status
                pipe.multi()
                pipe.hset(key, mapping=changes)
                if new_status and new_status != before.status:
                    pipe.zrem(KEYS.tickets_by_status(before.status), code)
                    pipe.zadd(KEYS.tickets_by_status(new_status), {code: before.created_at})
                pipe.rpush(KEYS.history(code), entry)
                if extra:
                    extra(pipe, before)
                pipe.execute()
                return Ticket.from_hash({**data, **changes})
            except WatchError:
                continue


def _clear_offers(pipe: Pipeline, r: Redis, code: str) -> None:
    for phone in r.zrange(KEYS.offered(code), 0, -1):
        pipe.zrem(KEYS.offers(phone), code)


def mark_offered(hl: Hotline, code: str, phones: list[str], level: int = 0) -> Ticket:
    """Record that the ticket was offered to `phones` (new -> notified)."""
    now = clock.timestamp()

    def extra(pipe: Pipeline, t: Ticket) -> None:
        for p in phones:
            pipe.zadd(KEYS.offered(code), {p: now}, nx=True)
            pipe.zadd(KEYS.offers(p), {code: now})

    fields = {"escalation_level": str(level)}
    if level:
        fields["escalated"] = "1"
    what = "escalated" if level else "offered"
    return _transition(hl, code, WAITING, lambda t: None, "notified", fields,
                       _entry("system", what, ",".join(mask(p) for p in phones)), extra)


def offered_to(hl: Hotline, code: str) -> list[str]:
    return list(hl.r.zrange(KEYS.offered(code), 0, -1))


def with_offers(hl: Hotline, code: str) -> tuple[Ticket | None, list[dict[str, Any]], list[str]]:
    """The ticket, its history and the numbers it was offered to, in one round trip."""
    pipe = hl.r.pipeline(transaction=False)
    pipe.hgetall(KEYS.ticket(code))
    pipe.lrange(KEYS.history(code), 0, -1)
    pipe.zrange(KEYS.offered(code), 0, -1)
    data, entries, offered = pipe.execute()
    return (Ticket.from_hash(data) if data else None, [json.loads(e) for e in entries],
            list(offered))


def pending_offers(hl: Hotline, phone: str) -> list[str]:
    return list(hl.r.zrevrange(KEYS.offers(phone), 0, -1))


def may_handle(hl: Hotline, person: Person, ticket: Ticket) -> bool:
    """Whether this person may take, assign or close the ticket."""
    if hl.r.zscore(KEYS.offered(ticket.code), person.phone) is not None:
        return True
    if ticket.is_triage:
        return person.role == "duty"  # unknown callers: the duty lists (triage) sort them out
    if person.role == "duty":
        # A township's duty officer: that town's tickets only (the village's, for a duty row
        # written with a village and no town), never another town's caller and address.
        if person.town:
            return person.town == (ticket.town or _town_of(hl, ticket.village_id))
        return bool(person.village_id) and person.village_id == ticket.village_id
    return person.village_id == ticket.village_id and (
        person.can_lead or (person.in_team and person.grid == ticket.grid))


def _town_of(hl: Hotline, village_id: str) -> str:
    """The town of a village (tickets made before they kept their town)."""
    return str(hl.r.hget(KEYS.village(village_id), "town") or "") if village_id else ""


def take(hl: Hotline, code: str, taker: str, by: str | None = None) -> Ticket:
    """`taker` takes the ticket; raises TicketError('accepted', ticket) if someone else has it."""
    def extra(pipe: Pipeline, t: Ticket) -> None:
        _clear_offers(pipe, hl.r, code)
        pipe.zadd(KEYS.tickets_by_assignee(taker), {code: t.created_at})

    what = "assigned" if by and by != taker else "accepted"
    accepted_at = str(clock.timestamp())
    ticket = _transition(
        hl, code, WAITING, lambda t: None, "accepted",
        {"accepted_by": taker, "accepted_at": accepted_at},
        _entry(by or taker, what, mask(taker)), extra)
    _after_take(hl, ticket, accepted_at, by or "", "")
    return ticket


def assign(hl: Hotline, code: str, to: str, by: str) -> Ticket:
    """A leader gives the ticket to `to`, taking it from whoever had it."""
    previous: list[str] = []

    def extra(pipe: Pipeline, t: Ticket) -> None:
        previous[:] = [t.accepted_by or ""]  # as the transaction saw it (a WATCH retry redoes it)
        _clear_offers(pipe, hl.r, code)
        if t.accepted_by:
            pipe.zrem(KEYS.tickets_by_assignee(t.accepted_by), code)
        pipe.zadd(KEYS.tickets_by_assignee(to), {code: t.created_at})

    accepted_at = str(clock.timestamp())
    ticket = _transition(hl, code, OPEN, lambda t: None, "accepted",
                         {"accepted_by": to, "accepted_at": accepted_at},
                         _entry(by, "assigned", mask(to)), extra)
    _after_take(hl, ticket, accepted_at, by, previous[0] if previous else "")
    return ticket


def _after_take(hl: Hotline, ticket: Ticket, accepted_at: str, by: str, previous: str) -> None:
    """What follows a take or an assignment: the texts to the resident, the taker and the
    others offered, and the taker's reminder after HOTLINE_REMIND_AFTER (both jobs do nothing
    if the ticket moved on meanwhile)."""
    jobs.taken(hl, ticket.code, ticket.accepted_at, ticket.accepted_by or "", by, previous)
    jobs.remind(hl, ticket.code, accepted_at)


def close(hl: Hotline, code: str, by: str, *, leader: bool = False) -> Ticket:
    """Done: by the assignee, or by a leader whatever the state."""
    def decide(t: Ticket) -> None:
        if not leader and t.accepted_by != by:
            raise TicketError("not_yours", t)

    def extra(pipe: Pipeline, t: Ticket) -> None:
        _clear_offers(pipe, hl.r, code)
        if t.accepted_by:
            pipe.zrem(KEYS.tickets_by_assignee(t.accepted_by), code)

    allowed = OPEN if leader else ("accepted",)
    ticket = _transition(hl, code, allowed, decide, "done", {"closed_at": str(clock.timestamp())},
                         _entry(by, "done"), extra)
    jobs.done(hl, code, by)  # follows: thank the resident, tell whoever else was on it
    return ticket


def release(hl: Hotline, code: str, by: str) -> Ticket:
    """The assignee hands the ticket back; it waits for a taker again."""
    def decide(t: Ticket) -> None:
        if t.accepted_by != by:
            raise TicketError("not_yours", t)

    def extra(pipe: Pipeline, t: Ticket) -> None:
        pipe.zrem(KEYS.tickets_by_assignee(by), code)
        pipe.delete(KEYS.offered(code))

    t = _transition(hl, code, ("accepted",), decide, "new",
                    {"accepted_by": "", "accepted_at": ""}, _entry(by, "released"), extra)
    jobs.offer(hl, code, str(int(clock.timestamp())))  # follows: offered afresh
    return t


def cancel(hl: Hotline, code: str, by: str, note: str = "") -> Ticket:
    def extra(pipe: Pipeline, t: Ticket) -> None:
        _clear_offers(pipe, hl.r, code)
        if t.accepted_by:
            pipe.zrem(KEYS.tickets_by_assignee(t.accepted_by), code)

    return _transition(hl, code, OPEN, lambda t: None, "cancelled",
                       {"closed_at": str(clock.timestamp())}, _entry(by, "cancelled", note), extra)


def add_text(hl: Hotline, code: str, who: str, text: str) -> Ticket:
    """A later text or recording from the caller, added to the open ticket."""
    # Joined inside the transaction, so two additions at once both stay.
    ticket = _transition(hl, code, OPEN, lambda t: {"text": f"{t.text}\n{text}".strip()}, None,
                         {}, _entry(who, "added", text[:200]))
    if ticket.accepted_by:  # follows: whoever is on the way is told
        jobs.added(hl, code, text, len(ticket.text.split("\n")))
    return ticket


def set_recording(hl: Hotline, code: str, url: str) -> Ticket:
    return _transition(hl, code, STATUSES, lambda t: None, None, {"recording_url": url},
                       _entry("system", "recording", url))


def note(hl: Hotline, code: str, who: str, what: str, text: str = "") -> None:
    """An entry in the history that changes no state (a message sent, a reminder)."""
    hl.r.rpush(KEYS.history(code), _entry(who, what, text))


def assigned_to(hl: Hotline, phone: str) -> list[Ticket]:
    codes = hl.r.zrange(KEYS.tickets_by_assignee(phone), 0, -1)
    return [t for c in codes if (t := get(hl, c)) and t.is_open]


def list_tickets(hl: Hotline, *, status: str | None = None, village_id: str | None = None,
                 since: float | None = None, until: float | None = None,
                 limit: int = 200) -> list[Ticket]:
    """Newest first, from the narrowest index; the other filter is applied on the way."""
    if village_id:
        key = KEYS.tickets_by_village(village_id)
    elif status:
        key = KEYS.tickets_by_status(status)
    else:
        key = KEYS.tickets
    hi = until if until is not None else "+inf"
    lo = since if since is not None else "-inf"
    out: list[Ticket] = []
    start = 0
    page = max(limit, 100)
    while len(out) < limit:
        codes = hl.r.zrevrangebyscore(key, hi, lo, start=start, num=page)
        if not codes:
            break
        start += len(codes)
        pipe = hl.r.pipeline(transaction=False)
        for c in codes:
            pipe.hgetall(KEYS.ticket(c))
        for data in pipe.execute():
            if data and (status is None or data.get("status") == status):
                out.append(Ticket.from_hash(data))
    return out[:limit]
