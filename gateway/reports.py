"""The daily report (日报告): what was asked, how fast it was taken and done, what went out.

A day is a calendar day in HOTLINE_TIMEZONE. Each figure counts what happened
that day: tickets opened (by category, and by their status now), tickets taken
(median time from opening to taking), tickets done (人次 served, median time
from opening to done), opened tickets that had to be escalated, and outbound
SMS created that day, sent or failed.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from gateway import messages, notices, registry, tickets
from gateway.context import Hotline
from gateway.tickets import TRIAGE, Ticket

# A ticket done today may have been opened up to this many days before.
LOOKBACK_DAYS = 60
SENT = ("sent", "delivered")
FAILED = ("failed", "undelivered")
COLUMNS = ("day", "village", "opened", *(f"category_{c}" for c in tickets.CATEGORIES),
           *(f"status_{s}" for s in tickets.STATUSES), "taken", "served", "people",
           "median_take_minutes", "median_close_minutes", "escalated", "sms_sent", "sms_failed")


@dataclass
class VillageDay:
    """One village's figures for one day (the triage row has village_id "triage")."""

    day: date
    village_id: str
    village: str
    opened: int = 0
    by_category: Counter[str] = field(default_factory=Counter)
    by_status: Counter[str] = field(default_factory=Counter)
    taken: int = 0
    served: int = 0
    served_people: set[str] = field(default_factory=set)
    take_seconds: list[float] = field(default_factory=list)
    close_seconds: list[float] = field(default_factory=list)
    escalated: int = 0
    sms_sent: int = 0
    sms_failed: int = 0

    @property
    def people(self) -> int:
        """Different people served that day (人数), beside the 人次 count `served`."""
        return len(self.served_people)

    @property
    def median_take(self) -> float | None:
        return statistics.median(self.take_seconds) if self.take_seconds else None

    @property
    def median_close(self) -> float | None:
        return statistics.median(self.close_seconds) if self.close_seconds else None

    def add(self, other: VillageDay) -> None:
        self.opened += other.opened
        self.by_category.update(other.by_category)
        self.by_status.update(other.by_status)
        self.taken += other.taken
        self.served += other.served
        self.served_people |= other.served_people
        self.take_seconds += other.take_seconds
        self.close_seconds += other.close_seconds
        self.escalated += other.escalated
        self.sms_sent += other.sms_sent
        self.sms_failed += other.sms_failed

    def row(self) -> dict[str, str]:
        """The CSV row, keyed by COLUMNS."""
        def minutes(seconds: float | None) -> str:
            return "" if seconds is None else f"{seconds / 60:.1f}"

        out = {"day": self.day.isoformat(), "village": self.village, "opened": str(self.opened)}
        out |= {f"category_{c}": str(self.by_category[c]) for c in tickets.CATEGORIES}
        out |= {f"status_{s}": str(self.by_status[s]) for s in tickets.STATUSES}
        out |= {"taken": str(self.taken), "served": str(self.served), "people": str(self.people),
                "median_take_minutes": minutes(self.median_take),
                "median_close_minutes": minutes(self.median_close),
                "escalated": str(self.escalated), "sms_sent": str(self.sms_sent),
                "sms_failed": str(self.sms_failed)}
        return out


def bounds(hl: Hotline, day: date) -> tuple[float, float]:
    """The day's first and last instant (as timestamps) in HOTLINE_TIMEZONE."""
    tz = hl.settings.tz
    start = datetime.combine(day, time.min, tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz)
    return start.timestamp(), end.timestamp()


def today(hl: Hotline) -> date:
    from gateway import clock

    return clock.now().astimezone(hl.settings.tz).date()


def scope(hl: Hotline, village_ids: Iterable[str] | None) -> list[tuple[str, str]]:
    """(id, name) of the villages asked for; None means every village and the triage row."""
    known = {v.id: v.name for v in registry.villages(hl.r)}
    if village_ids is None:
        return [*known.items(), (TRIAGE, "")]
    return [(vid, known.get(vid, "")) for vid in village_ids]


def daily(hl: Hotline, day: date, village_ids: Iterable[str] | None = None) -> list[VillageDay]:
    """One VillageDay per village in scope, in registry order."""
    start, end = bounds(hl, day)
    rows = {vid: VillageDay(day, vid, name) for vid, name in scope(hl, village_ids)}
    for vid, row in rows.items():
        for t in tickets.list_tickets(hl, village_id=vid, since=start - LOOKBACK_DAYS * 86400,
                                      until=end, limit=1_000_000):
            _count_ticket(row, t, start, end)
    _count_messages(hl, rows, start, end)
    return list(rows.values())


def total(day: date, rows: Iterable[VillageDay], name: str) -> VillageDay:
    out = VillageDay(day, "", name)
    for row in rows:
        out.add(row)
    return out


def _within(ts: float | None, start: float, end: float) -> bool:
    return ts is not None and start <= ts < end


def _count_ticket(row: VillageDay, t: Ticket, start: float, end: float) -> None:
    if _within(t.created_at, start, end):
        row.opened += 1
        row.by_category[t.category] += 1
        row.by_status[t.status] += 1
        row.escalated += t.escalated
    if t.accepted_at is not None and _within(t.accepted_at, start, end):
        row.taken += 1
        row.take_seconds.append(max(0.0, t.accepted_at - t.created_at))
    if t.status == "done" and t.closed_at is not None and _within(t.closed_at, start, end):
        row.served += 1
        row.served_people.add(t.caller)
        row.close_seconds.append(max(0.0, t.closed_at - t.created_at))


def _count_messages(hl: Hotline, rows: Mapping[str, VillageDay], start: float, end: float) -> None:
    """Outbound SMS created that day, counted for the village of their ticket, notice or recipient."""
    village_of_ticket: dict[str, str] = {}
    village_of_notice: dict[str, str] = {}
    for m in messages.list_messages(hl, since=start, limit=1_000_000):
        if m.direction != "out" or not _within(m.created_at, start, end):
            continue
        if m.ticket:
            if m.ticket not in village_of_ticket:
                t = tickets.get(hl, m.ticket)
                village_of_ticket[m.ticket] = t.village_id if t else ""
            vid = village_of_ticket[m.ticket]
        elif m.notice:
            if m.notice not in village_of_notice:
                n = notices.get(hl, m.notice)
                village_of_notice[m.notice] = n.village_id if n else ""
            vid = village_of_notice[m.notice]
        else:
            person = registry.person(hl.r, m.to)
            vid = person.village_id if person and person.village_id else TRIAGE
        row = rows.get(vid)
        if row is None:
            continue
        if m.status in SENT:
            row.sms_sent += 1
        elif m.status in FAILED:
            row.sms_failed += 1


def trend(hl: Hotline, last: date, days: int, village_ids: Iterable[str] | None = None
          ) -> list[tuple[date, int, int]]:
    """(day, opened, served) for `days` days ending with `last`: the report's chart."""
    ids = [vid for vid, _ in scope(hl, village_ids)]
    first = last - timedelta(days=days - 1)
    start, _ = bounds(hl, first)
    _, end = bounds(hl, last)
    opened: Counter[date] = Counter()
    served: Counter[date] = Counter()
    tz = hl.settings.tz
    for vid in ids:
        for t in tickets.list_tickets(hl, village_id=vid, since=start - LOOKBACK_DAYS * 86400,
                                      until=end, limit=1_000_000):
            if _within(t.created_at, start, end):
                opened[datetime.fromtimestamp(t.created_at, tz).date()] += 1
            if t.status == "done" and t.closed_at is not None and _within(t.closed_at, start, end):
                served[datetime.fromtimestamp(t.closed_at, tz).date()] += 1
    return [(d, opened[d], served[d]) for d in (first + timedelta(days=i) for i in range(days))]


def to_csv(rows: Iterable[VillageDay], headers: Mapping[str, str] | None = None) -> str:
    """CSV with a BOM so spreadsheet programs read the Chinese right; `headers` names the columns."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([(headers or {}).get(c, c) for c in COLUMNS])
    for row in rows:
        data = row.row()
        writer.writerow([_cell(data[c]) for c in COLUMNS])
    return out.getvalue()


def _cell(value: str) -> str:
    """A cell a spreadsheet will not run as a formula (a village name from a registry file)."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@") and not _is_number(value) else value


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True
