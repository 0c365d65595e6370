"""Redis stopped for a while: texts and calls are still answered, spooled, and replayed once, in order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from gateway import messages, redis_away, spool, tickets
from gateway.app import create_app
from gateway.context import Hotline
from gateway.embedded import EmbeddedRedis
from gateway.registry_file import import_file
from tests.conftest import RESIDENT, SAMPLE, STRANGER, drain, make_settings, post_twilio
from workers import runtime


@pytest.fixture
def away(own_redis: EmbeddedRedis, tmp_path: Path) -> Iterator[tuple[Hotline, FlaskClient]]:
    settings = make_settings(own_redis.url, tmp_path / "data")
    hl = Hotline(settings)
    assert import_file(hl.r, SAMPLE, "CN").ok
    runtime.use(hl)
    yield hl, create_app(settings).test_client()
    runtime.use(None)


def sms(client: FlaskClient, sid: str, sender: str, body: str) -> str:
    sid = "SM" + sid[2:].rjust(32, "0")  # "SM1": Twilio's shape, SM and 32 hex digits
    response = post_twilio(client, "/twilio/sms", {"MessageSid": sid, "From": sender,
                                                   "To": "+8647100000000", "Body": body})
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_texts_while_redis_is_down_are_answered_and_replayed_once_in_order(
        away: tuple[Hotline, FlaskClient], own_redis: EmbeddedRedis) -> None:
    hl, client = away
    own_redis.stop()
    first = sms(client, "SM1", RESIDENT, "1 要降压药")
    sms(client, "SM1", RESIDENT, "1 要降压药")  # Twilio's retry of the same text
    sms(client, "SM2", STRANGER, "家里停电了")
    assert "已收到您的短信" in first
    assert spool.pending(hl.settings.data_dir)

    own_redis.start()
    assert redis_away.replay(hl) == 3
    assert redis_away.replay(hl) == 0
    found = tickets.list_tickets(hl)
    assert [(t.caller, t.category) for t in reversed(found)] == [
        (RESIDENT, "medicine"), (STRANGER, "utilities")]
    drain(hl)
    replies = [m for m in messages.list_messages(hl) if m.kind != "offer"]
    assert any(m.to == RESIDENT and f"#{found[-1].code}" in m.body for m in replies)


def test_a_call_while_redis_is_down_becomes_a_callback_ticket(
        away: tuple[Hotline, FlaskClient], own_redis: EmbeddedRedis) -> None:
    hl, client = away
    own_redis.stop()
    response = post_twilio(client, "/twilio/voice", {"CallSid": "CA" + "1" * 32, "From": RESIDENT,
                                                     "To": "+8647100000000",
                                                     "CallStatus": "ringing"})
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "回电" in body and "<Hangup" in body
    own_redis.start()
    assert redis_away.replay(hl) == 1
    redis_away.replay(hl)
    found = tickets.list_tickets(hl)
    assert [(t.caller, t.category, t.channel) for t in found] == [(RESIDENT, "callback", "voice")]


def test_requests_are_handled_normally_once_redis_is_back(
        away: tuple[Hotline, FlaskClient]) -> None:
    hl, client = away
    assert "#" in sms(client, "SM9", RESIDENT, "1")
    assert not spool.pending(hl.settings.data_dir)
