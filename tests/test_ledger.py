"""The webhooks' ledger copy: no Redis round trip per lookup, an import seen within the refresh time."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
import redis
from flask.testing import FlaskClient

from gateway import tickets
from gateway.app import create_app
from gateway.context import Hotline
from gateway.ledger import LedgerCopy
from gateway.registry import Person
from gateway.registry_file import import_file, store_people
from gateway.store import connect
from tests.conftest import RESIDENT, SAMPLE, STRANGER, post_twilio

REFRESH = 0.3


def reads(hl: Hotline) -> int:
    """Commands the server has run that read or write the ledger's keys (or anything else)."""
    stats = hl.r.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k not in ("cmdstat_info",))


def newcomer(phone: str = STRANGER) -> Person:
    return Person(phone=phone, name="新来的", role="resident", village="联合村", grid="第一网格")


def test_lookups_within_the_refresh_time_make_no_redis_call(sample: Hotline) -> None:
    copy = LedgerCopy(sample.r, refresh=60)
    assert copy.person(RESIDENT) is not None  # loads the copy
    before = reads(sample)
    for _ in range(50):
        found = copy.person(RESIDENT)
        assert found is not None and found.name == "王秀英"
        assert copy.person(STRANGER) is None
    assert reads(sample) == before


def test_an_import_reaches_the_copy_within_the_refresh_time(sample: Hotline) -> None:
    copy = LedgerCopy(sample.r, refresh=REFRESH)
    assert copy.person(STRANGER) is None
    looked = time.monotonic()
    store_people(sample.r, [newcomer()])
    time.sleep(max(0.0, looked + REFRESH - time.monotonic()) + 0.01)
    found = copy.person(STRANGER)  # the first lookup once the refresh time is up
    assert found is not None and found.name == "新来的"


def test_an_import_that_changes_nothing_does_not_reload_the_copies(sample: Hotline) -> None:
    version = sample.r.get("hl:people:version")
    assert version
    report = import_file(sample.r, SAMPLE, "CN")
    assert report.unchanged == 16
    assert sample.r.get("hl:people:version") == version


def test_a_flushed_store_is_noticed(sample: Hotline) -> None:
    copy = LedgerCopy(sample.r, refresh=0.01)
    assert copy.person(RESIDENT) is not None
    sample.r.flushall()
    time.sleep(0.02)
    assert copy.person(RESIDENT) is None


def test_with_redis_away_the_copy_in_hand_still_answers(sample: Hotline, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    copy = LedgerCopy(sample.r, refresh=0.01)
    assert copy.person(RESIDENT) is not None
    copy.r = connect(f"unix://{tmp_path}/nobody-listens.sock")
    time.sleep(0.02)
    found = copy.person(RESIDENT)
    assert found is not None and found.name == "王秀英"
    assert "Redis is away" in caplog.text


def test_with_redis_away_and_no_copy_yet_the_lookup_fails_loudly(tmp_path: Path) -> None:
    copy = LedgerCopy(connect(f"unix://{tmp_path}/nobody-listens.sock"), refresh=1)
    with pytest.raises(redis.ConnectionError):
        copy.person(RESIDENT)


def test_with_refresh_zero_every_lookup_reads_redis(sample: Hotline) -> None:
    copy = LedgerCopy(sample.r, refresh=0)
    assert copy.person(STRANGER) is None
    store_people(sample.r, [newcomer()])
    assert copy.person(STRANGER) is not None


def test_a_text_from_a_newly_imported_resident_reaches_their_grid_once_the_copy_refreshes(
        sample: Hotline) -> None:
    hl = Hotline(sample.settings.with_overrides(ledger_refresh=REFRESH))
    client: FlaskClient = create_app(hl.settings, hl.url).test_client()

    def ask(sender: str) -> tickets.Ticket:
        params = {"MessageSid": f"SM{uuid.uuid4().hex}", "From": sender, "To": "+8610000000000",
                  "Body": "需要降压药", "NumMedia": "0", "AccountSid": "AC" + "0" * 32}
        assert post_twilio(client, "/twilio/sms", params).status_code == 200
        found = [t for t in tickets.list_tickets(hl) if t.caller == sender]
        assert len(found) == 1
        return found[0]

    assert ask(RESIDENT).village == "联合村"  # the copy is loaded: a known resident
    newcomer_phone = "+8613700001234"
    store_people(hl.r, [newcomer(newcomer_phone)])
    time.sleep(REFRESH * 1.5)
    ticket = ask(newcomer_phone)
    assert (ticket.village, ticket.grid, ticket.caller_name) == ("联合村", "第一网格", "新来的")
