"""The ledger page (台账): residents by special group with their contact person, and who has gone quiet."""

from __future__ import annotations

from dataclasses import dataclass

from flask import render_template, request
from flask.typing import ResponseReturnValue

from gateway import clock, messages
from gateway.registry import GROUPS, Person, residents
from gateway.store import KEYS
from gateway.web.auth import user
from gateway.web.scope import chosen_village, villages_for
from gateway.web.site import bp, hotline

DEFAULT_DAYS = 7
MAX_DAYS = 365


@dataclass(frozen=True)
class Row:
    person: Person
    last_ticket: float | None
    last_message: float | None

    @property
    def last_contact(self) -> float | None:
        known = [t for t in (self.last_ticket, self.last_message) if t is not None]
        return max(known) if known else None


def _days(raw: str | None) -> int:
    try:
        return min(max(int(raw or DEFAULT_DAYS), 1), MAX_DAYS)
    except ValueError:
        return DEFAULT_DAYS


def _rows(people: list[Person], since: float) -> list[Row]:
    """Each resident with their newest ticket (ever) and newest SMS either way (within the window)."""
    hl = hotline()
    texted: dict[str, float] = {}
    for m in messages.list_messages(hl, since=since, limit=1_000_000):
        for phone in (m.to, m.sender):
            if phone and m.created_at > texted.get(phone, 0):
                texted[phone] = m.created_at
    pipe = hl.r.pipeline(transaction=False)
    for p in people:
        pipe.zrevrange(KEYS.tickets_by_caller(p.phone), 0, 0, withscores=True)
    newest = pipe.execute()
    return [Row(p, float(last[0][1]) if last else None, texted.get(p.phone))
            for p, last in zip(people, newest, strict=True)]


@bp.get("/ledger")
def ledger() -> ResponseReturnValue:
    account = user()
    villages = villages_for(account)
    vid = chosen_village(account, request.args.get("village"), allow_triage=False)
    shown = [v for v in villages if vid is None or v.id == vid]
    days = _days(request.args.get("days"))
    group = request.args.get("group", "")
    since = clock.timestamp() - days * 86400
    people = [p for v in shown for p in residents(hotline().r, v.id)
              if not group or group in p.groups]
    rows = _rows(people, since)
    quiet = [r for r in rows if r.last_contact is None or r.last_contact < since]
    by_group = {g: [r for r in rows if g in r.person.groups] for g in GROUPS}
    other = [r for r in rows if not r.person.groups]
    return render_template("ledger.html", villages=villages, vid=vid or "", days=days, group=group,
                           groups=GROUPS, rows=rows, quiet=quiet, by_group=by_group, other=other,
                           since=since)
