"""Help tickets: opened from a call or text, offered, taken, closed; every write one Lua script."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gateway import clock, jobs, registry
from gateway.context import Hotline
from gateway.lua import Script, flat, pairs
from gateway.phones import mask
from gateway.registry import Person
from gateway.store import KEYS

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

# Every write of a ticket is tickets.write.lua: `open_ticket` makes one (also called by the
# SMS intake script, conversation.intake.lua), `change_ticket` makes each move of MOVES.
_WRITE = Script(__name__, "write")


@dataclass(frozen=True)
class Move:
    """One kind of change to a ticket, as change_ticket (tickets.write.lib.lua) carries it out."""

    allowed: tuple[str, ...]  # the statuses it may start from; from any other: TicketError
    status: str = ""  # the status it ends in ("": unchanged)
    owner_only: bool = False  # only by whoever has the ticket (else TicketError "not_yours")
    offers: str = ""  # "add" the numbers offered; "clear" it from their offers; "forget" them
    assignee: str = ""  # "drop" it from its holder's taken list; "move" it to the new taker's
    append: str = ""  # a field the change adds a line to, joined inside the script


MOVES = {
    "offer": Move(WAITING, "notified", offers="add"),
    "take": Move(WAITING, "accepted", offers="clear", assignee="move"),
    "assign": Move(OPEN, "accepted", offers="clear", assignee="move"),
    "close": Move(("accepted",), "done", owner_only=True, offers="clear", assignee="drop"),
    "close_as_leader": Move(OPEN, "done", offers="clear", assignee="drop"),
    "release": Move(("accepted",), "new", owner_only=True, offers="forget", assignee="drop"),
    "cancel": Move(OPEN, "cancelled", offers="clear", assignee="drop"),
    "add_text": Move(OPEN, append="text"),
    "recording": Move(STATUSES),
}


def new_ticket(hl: Hotline, caller: str, category: str, channel: str, person: Person | None, *,
               text: str = "", recording_url: str = "", call_sid: str = "",
               notify: bool = True) -> tuple[dict[str, Any], dict[str, str]]:
    """(spec, fields) for `open_ticket` (tickets.write.lib.lua): all a new ticket is but its code."""
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
    spec = {"seq": KEYS.seq("ticket"), "intake": KEYS.intake,
            "indexes": [KEYS.tickets, KEYS.tickets_by_status("new"), KEYS.tickets_by_village(vid),
                        KEYS.tickets_by_caller(caller)],
            "key": KEYS.ticket("{code}"), "history": KEYS.history("{code}"),
            "first": str(FIRST_CODE), "now": now, "notify": notify,
            "entry": _entry(caller, "opened", f"{channel}/{category}"),
            "fields": flat(fields)}
    return spec, fields


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
    spec, fields = new_ticket(hl, caller, category, channel, person, text=text,
                              recording_url=recording_url, call_sid=call_sid, notify=notify)
    code = str(_WRITE(hl.r, spec={"open": spec}))
    return opened(hl, code, fields)


def open_ticket_of(hl: Hotline, caller: str, within: float | None = None) -> Ticket | None:
    """The caller's newest open ticket (opened within `within` seconds, when given)."""
    since = clock.timestamp() - within if within is not None else "-inf"
    for code in hl.r.zrevrangebyscore(KEYS.tickets_by_caller(caller), "+inf", since):
        t = get(hl, code)
        if t and t.is_open:
            return t
    return None


def _move(hl: Hotline, code: str, name: str, entry: str, fields: dict[str, str] | None = None,
          *, owner: str = "", phones: Iterable[str] = (), taker: str = "",
          line: str = "") -> tuple[Ticket, Ticket]:
    """Make the move MOVES[name] of ticket `code` in one atomic step: (before, after).

    `owner`: the one who must hold it (owner_only moves); `phones`: the numbers offered (an
    "add"); `taker`: whoever now has it (a "move"); `line`: the text an `append` adds.
    """
    move = MOVES[name]
    change = {
        "code": code, "key": KEYS.ticket(code), "history": KEYS.history(code),
        "offered": KEYS.offered(code), "offers_of": KEYS.offers("{phone}"),
        "assigned": KEYS.tickets_by_assignee("{phone}"),
        "by_status": KEYS.tickets_by_status("{status}"), "now": str(clock.timestamp()),
        "allowed": list(move.allowed), "status": move.status, "offers": move.offers,
        "assignee": move.assignee, "append": move.append, "line": line, "taker": taker,
        "owner": owner if move.owner_only else "", "phones": list(phones), "entry": entry,
        "fields": flat(fields or {}),
    }
    outcome, *hashes = _WRITE(hl.r, spec={"change": change})
    if outcome == "unknown":
        raise TicketError("unknown")
    before = Ticket.from_hash(pairs(hashes[-1] if outcome == "refused" else hashes[0]))
    if outcome == "refused":
        raise TicketError(str(hashes[0]), before)
    return before, Ticket.from_hash(pairs(hashes[1]))


def mark_offered(hl: Hotline, code: str, phones: list[str], level: int = 0) -> Ticket:
    """Record that the ticket was offered to `phones` (new -> notified)."""
    fields = {"escalation_level": str(level)}
    if level:
        fields["escalated"] = "1"
    what = "escalated" if level else "offered"
    return _move(hl, code, "offer", _entry("system", what, ",".join(mask(p) for p in phones)),
                 fields, phones=phones)[1]


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
    what = "assigned" if by and by != taker else "accepted"
    accepted_at = str(clock.timestamp())
    _, ticket = _move(hl, code, "take", _entry(by or taker, what, mask(taker)),
                      {"accepted_by": taker, "accepted_at": accepted_at}, taker=taker)
    _after_take(hl, ticket, accepted_at, by or "", "")
    return ticket


def assign(hl: Hotline, code: str, to: str, by: str) -> Ticket:
    """A leader gives the ticket to `to`, taking it from whoever had it."""
    accepted_at = str(clock.timestamp())
    before, ticket = _move(hl, code, "assign", _entry(by, "assigned", mask(to)),
                           {"accepted_by": to, "accepted_at": accepted_at}, taker=to)
    _after_take(hl, ticket, accepted_at, by, before.accepted_by)
    return ticket


def _after_take(hl: Hotline, ticket: Ticket, accepted_at: str, by: str, previous: str) -> None:
    """What follows a take or an assignment: the texts to the resident, the taker and the
    others offered, and the taker's reminder after HOTLINE_REMIND_AFTER (both jobs do nothing
    if the ticket moved on meanwhile)."""
    jobs.taken(hl, ticket.code, ticket.accepted_at, ticket.accepted_by or "", by, previous)
    jobs.remind(hl, ticket.code, accepted_at)


def close(hl: Hotline, code: str, by: str, *, leader: bool = False) -> Ticket:
    """Done: by the assignee, or by a leader whatever the state."""
    ticket = _move(hl, code, "close_as_leader" if leader else "close", _entry(by, "done"),
                   {"closed_at": str(clock.timestamp())}, owner=by)[1]
    jobs.done(hl, code, by)  # follows: thank the resident, tell whoever else was on it
    return ticket


def release(hl: Hotline, code: str, by: str) -> Ticket:
    """The assignee hands the ticket back; it waits for a taker again."""
    t = _move(hl, code, "release", _entry(by, "released"), {"accepted_by": "", "accepted_at": ""},
              owner=by)[1]
    jobs.offer(hl, code, str(int(clock.timestamp())))  # follows: offered afresh
    return t


def cancel(hl: Hotline, code: str, by: str, note: str = "") -> Ticket:
    return _move(hl, code, "cancel", _entry(by, "cancelled", note),
                 {"closed_at": str(clock.timestamp())})[1]


def add_text(hl: Hotline, code: str, who: str, text: str) -> Ticket:
    """A later text or recording from the caller, added to the open ticket."""
    # rstrip here: the script trims only ASCII space, Python's strip() any (a cut-off "\u3000")
    ticket = _move(hl, code, "add_text", _entry(who, "added", text[:200]), line=text.rstrip())[1]
    if ticket.accepted_by:  # follows: whoever is on the way is told
        jobs.added(hl, code, text, len(ticket.text.split("\n")))
    return ticket


def set_recording(hl: Hotline, code: str, url: str) -> Ticket:
    return _move(hl, code, "recording", _entry("system", "recording", url),
                 {"recording_url": url})[1]


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
