"""The daily report: each figure counts what happened on that calendar day in HOTLINE_TIMEZONE."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from gateway import clock, messages, reports, tickets
from gateway.context import Hotline
from tests.conftest import RESIDENT, STRANGER, VOLUNTEER, VOLUNTEER2

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = date(2024, 3, 10)
ZHANG_GUILAN = "+8613900000003"  # 联合村 第二网格
BATEER = "+8613900000004"        # 团结村
CHEN_JING = "+8613800000012"      # 联合村 第二网格 volunteer

Clock = Callable[[str], None]


@pytest.fixture
def at(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Set "now" to a local Shanghai time such as "2024-03-10 09:00"."""
    def move(local: str) -> None:
        moment = datetime.strptime(local, "%Y-%m-%d %H:%M").replace(tzinfo=SHANGHAI)
        monkeypatch.setattr(clock, "now", lambda: moment)

    return move


@pytest.fixture
def day_of_work(sample: Hotline, at: Clock) -> dict[str, str]:
    """A day in two villages, with work spilling in from the evening before and out to the next day."""
    at("2024-03-09 23:50")
    evening = tickets.open_ticket(sample, RESIDENT, "food", "sms", notify=False).code
    at("2024-03-10 00:10")
    tickets.take(sample, evening, VOLUNTEER2)
    at("2024-03-10 00:30")
    tickets.close(sample, evening, VOLUNTEER2)
    at("2024-03-10 09:00")
    medicine = tickets.open_ticket(sample, RESIDENT, "medicine", "voice", notify=False).code
    offer = messages.queue_sms(sample, VOLUNTEER, "offer", kind="offer", ticket=medicine)
    messages.update(sample, offer.id, status="delivered")
    failed = messages.queue_sms(sample, VOLUNTEER2, "offer", kind="offer", ticket=medicine)
    messages.update(sample, failed.id, status="failed")
    at("2024-03-10 09:06")
    tickets.take(sample, medicine, VOLUNTEER)
    at("2024-03-10 09:30")
    tickets.close(sample, medicine, VOLUNTEER)
    at("2024-03-10 10:00")
    food = tickets.open_ticket(sample, ZHANG_GUILAN, "food", "sms", notify=False).code
    at("2024-03-10 10:10")
    tickets.take(sample, food, CHEN_JING)
    at("2024-03-10 23:30")
    doctor = tickets.open_ticket(sample, BATEER, "doctor", "voice", notify=False).code
    tickets.mark_offered(sample, doctor, [], level=1)
    at("2024-03-11 00:01")
    tickets.open_ticket(sample, STRANGER, "food", "voice", notify=False)
    late = messages.queue_sms(sample, VOLUNTEER, "next day", kind="offer", ticket=medicine)
    messages.update(sample, late.id, status="delivered")
    return {"evening": evening, "medicine": medicine, "food": food, "doctor": doctor}


def _by_name(rows: list[reports.VillageDay]) -> dict[str, reports.VillageDay]:
    return {r.village or r.village_id: r for r in rows}


def test_a_villages_day_counts_what_was_opened_taken_and_done_that_day(
        sample: Hotline, day_of_work: dict[str, str]) -> None:
    rows = _by_name(reports.daily(sample, DAY))
    lianhe = rows["联合村"]
    assert lianhe.opened == 2
    assert dict(lianhe.by_category) == {"medicine": 1, "food": 1}
    assert dict(lianhe.by_status) == {"done": 1, "accepted": 1}
    assert lianhe.taken == 3  # the evening's ticket was taken after midnight
    assert lianhe.median_take == 10 * 60
    assert (lianhe.served, lianhe.people) == (2, 1)  # 人次 2, one resident twice
    assert lianhe.median_close == 35 * 60
    assert (lianhe.sms_sent, lianhe.sms_failed) == (1, 1)
    assert lianhe.escalated == 0


def test_the_day_ends_at_local_midnight_not_utc(sample: Hotline,
                                                day_of_work: dict[str, str]) -> None:
    rows = _by_name(reports.daily(sample, DAY))
    assert (rows["团结村"].opened, rows["团结村"].escalated) == (1, 1)  # 23:30 local
    assert rows["triage"].opened == 0  # 00:01 local the next day
    nextday = _by_name(reports.daily(sample, date(2024, 3, 11)))
    assert nextday["triage"].opened == 1 and nextday["联合村"].sms_sent == 1


def test_a_village_alone_and_the_total(sample: Hotline, day_of_work: dict[str, str]) -> None:
    tuanjie = sample.r.hget("hl:villages", "团结村")
    only = reports.daily(sample, DAY, [tuanjie])
    assert [r.village for r in only] == ["团结村"]
    total = reports.total(DAY, reports.daily(sample, DAY), "合计")
    assert (total.opened, total.served, total.taken, total.escalated) == (3, 2, 3, 1)
    assert total.median_take == 10 * 60


def test_the_trend_counts_opened_and_served_per_day(sample: Hotline,
                                                    day_of_work: dict[str, str]) -> None:
    assert reports.trend(sample, DAY, 3) == [
        (date(2024, 3, 8), 0, 0), (date(2024, 3, 9), 1, 0), (date(2024, 3, 10), 3, 2)]


def test_the_csv_has_named_columns_and_one_row_per_village(
        sample: Hotline, day_of_work: dict[str, str]) -> None:
    text = reports.to_csv(reports.daily(sample, DAY), {"village": "村", "opened": "新求助"})
    assert text.startswith("\ufeff")  # spreadsheet programs then read the Chinese right
    table = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    lianhe = next(r for r in table if r["村"] == "联合村")
    assert lianhe["新求助"] == "2" and lianhe["day"] == "2024-03-10"
    assert lianhe["category_medicine"] == "1" and lianhe["status_done"] == "1"
    assert lianhe["median_take_minutes"] == "10.0" and lianhe["served"] == "2"
    assert len(table) == 3  # 联合村, 团结村, triage


def test_a_quiet_day_has_no_medians(sample: Hotline) -> None:
    row = reports.daily(sample, date(2020, 1, 1))[0]
    assert (row.opened, row.median_take, row.median_close) == (0, None, None)
    assert row.row()["median_take_minutes"] == ""


def test_a_village_name_cannot_smuggle_a_formula_into_the_csv(sample: Hotline) -> None:
    row = reports.VillageDay(DAY, "v9", "=HYPERLINK(1)")
    assert "'=HYPERLINK" in reports.to_csv([row])
