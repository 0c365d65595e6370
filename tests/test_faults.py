"""Faults, bounded in time: Redis killed under traffic, and a thousand replayed webhooks."""

from __future__ import annotations

import os
import re
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from gateway import messages, redis_away, tickets
from gateway.app import create_app
from gateway.context import Hotline
from gateway.embedded import EmbeddedRedis
from gateway.registry_file import import_file
from tests.conftest import SAMPLE, make_settings, post_twilio
from workers import runtime

CODE = re.compile(r"#(\d{4,})")


def stranger(i: int) -> str:
    return f"+86137{i:08d}"


@pytest.fixture
def setup(own_redis: EmbeddedRedis, tmp_path: Path) -> Iterator[tuple[Hotline, FlaskClient]]:
    settings = make_settings(own_redis.url, tmp_path / "data", inbound_limit=1000)
    hl = Hotline(settings)
    assert import_file(hl.r, SAMPLE, "CN").ok
    runtime.use(hl)
    yield hl, create_app(settings).test_client()
    runtime.use(None)


@pytest.mark.slow
def test_redis_killed_and_restarted_under_traffic_loses_no_acknowledged_ticket(
        setup: tuple[Hotline, FlaskClient], own_redis: EmbeddedRedis) -> None:
    hl, client = setup
    acknowledged: list[str] = []
    spooled = 0
    total = 150
    for i in range(total):
        if i == 60:
            assert own_redis.process is not None
            os.kill(own_redis.process.pid, signal.SIGKILL)  # no SHUTDOWN, no final fsync
            own_redis.process.wait()
            own_redis.process = None
        if i == 90:
            own_redis.start()  # reloads the append-only file
        response = post_twilio(client, "/twilio/sms", {"MessageSid": f"SM{i:032d}",
                                                       "From": stranger(i), "Body": "1"})
        assert response.status_code == 200
        reply = response.get_data(as_text=True)
        if match := CODE.search(reply):
            acknowledged.append(match.group(1))
        else:
            assert "已收到您的短信" in reply
            spooled += 1
    assert spooled == 30 and len(acknowledged) == 120
    for code in acknowledged:
        assert tickets.get(hl, code) is not None, f"acknowledged ticket #{code} was lost"
    assert redis_away.replay(hl) == spooled
    callers = {t.caller for t in tickets.list_tickets(hl, limit=1000)}
    assert callers == {stranger(i) for i in range(total)}


@pytest.mark.slow
def test_a_thousand_replayed_webhooks_make_no_duplicates(
        setup: tuple[Hotline, FlaskClient]) -> None:
    hl, client = setup
    app_client = client
    errors: list[int] = []

    def deliver(worker: int) -> None:
        local = app_client.application.test_client()
        for n in range(250):
            i = (n + worker * 7) % 100  # every text delivered 10 times, interleaved
            response = post_twilio(local, "/twilio/sms", {"MessageSid": f"SM{i + 0xd00:032x}",
                                                          "From": stranger(i), "Body": "2"})
            if response.status_code != 200:
                errors.append(response.status_code)

    threads = [threading.Thread(target=deliver, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    found = tickets.list_tickets(hl, limit=2000)
    assert len(found) == 100
    assert len({t.caller for t in found}) == 100
    inbound = [m for m in messages.list_messages(hl, status="received", limit=5000)]
    assert len(inbound) == 100
