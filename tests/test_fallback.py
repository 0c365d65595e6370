"""HOTLINE_SMS_FALLBACK: a standby sender that carries the messages while the channel is failing."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import messages, pacing
from gateway.app import create_app
from gateway.channels import get_channel
from gateway.channels.android.transport import AndroidChannel
from gateway.channels.gammu.transport import GammuChannel
from gateway.channels.state import read
from gateway.context import Hotline
from gateway.outage import Gate
from gateway.store import KEYS
from tests.conftest import GRID_WORKER, LEADER, VOLUNTEER, VOLUNTEER2
from tests.fake_android import FakePhone, run_due
from workers import runtime


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    for folder in ("inbox", "outbox", "sent", "error"):
        (tmp_path / "spool" / folder).mkdir(parents=True)
    return tmp_path / "spool"


@pytest.fixture
def phone() -> Iterator[FakePhone]:
    fake = FakePhone()
    fake.auto_send = False
    fake.start()
    yield fake
    fake.stop()


def use(hl: Hotline, **changes: object) -> Hotline:
    hotline = Hotline(hl.settings.with_overrides(**changes), url=hl.url)
    runtime.use(hotline)
    return hotline


def sent_through(hl: Hotline, to: str, body: str = "测试") -> tuple[str, str]:
    """Queue a reply, let a worker run what is due: which sender carried it, and its status."""
    queued = messages.queue_sms(hl, to, body, kind="reply")
    run_due(hl)
    record = messages.get(hl, queued.id)
    assert record is not None
    return record.channel, record.status


def test_while_twilio_is_unreachable_the_modem_carries_every_message(
        sample: Hotline, spool: Path) -> None:
    hl = use(sample, sms_channel="twilio", twilio_account_sid="AC" + "0" * 32,
             twilio_auth_token="t" * 32, twilio_from_number="+15005550006",
             twilio_api_base=f"http://127.0.0.1:{closed_port()}", sms_fallback="gammu",
             gammu_spool=spool, retry_first=60, retry_max=600)
    queued = [messages.queue_sms(hl, n, f"求助#10{i}：请接单", kind="offer")
              for i, n in enumerate((LEADER, GRID_WORKER, VOLUNTEER))]
    run_due(hl)  # the first fails through Twilio and goes on through the modem; the rest follow
    records = [messages.get(hl, q.id) for q in queued]
    assert [(m.channel, m.status) for m in records if m] == [("gammu", "sending")] * 3
    assert records[0] is not None and records[0].attempts == 2  # Twilio once, then the modem
    assert all(m is not None and m.attempts == 1 for m in records[1:])  # the modem only
    assert sorted(p.name for p in (spool / "outbox").iterdir()) == sorted(
        m.provider_id for m in records if m)
    health = create_app(hl.settings, url=hl.url).test_client().get("/healthz").get_json()
    assert health["channels"]["twilio"]["state"].startswith("failing: next try")
    assert (health["channels"]["gammu"]["role"], health["channels"]["gammu"]["outbox"]) == (
        "standby", 3)


def test_the_channel_is_tried_again_after_the_backoff_and_takes_over_when_back(
        sample: Hotline, spool: Path, phone: FakePhone) -> None:
    # The backoff is a minute here, so that a slow machine never sees it pass by itself; the
    # test says when it has passed (the outage's next probe time, set to now).
    hl = use(sample, sms_channel="android", android_gateway_url=phone.url,
             android_gateway_user=phone.user, android_gateway_password=phone.password,
             sms_fallback="gammu", gammu_spool=spool, retry_first=60, retry_max=600)

    def failing_for(backoff: float, since: float) -> None:
        """The next probe is `backoff` after the failure, which came after `since`."""
        next_probe = Gate(hl, "android").next_probe()
        assert next_probe is not None
        assert since + backoff <= next_probe <= pacing.server_now(hl) + backoff

    def backoff_passes() -> None:
        hl.r.hset(KEYS.gate("android"), "next", "0")

    phone.stop()
    before = pacing.server_now(hl)
    assert sent_through(hl, LEADER) == ("gammu", "sending")  # the phone failed: the modem took it
    failing_for(60, before)
    assert sent_through(hl, GRID_WORKER) == ("gammu", "sending")  # no probe due: not even tried
    assert read(hl, "android").failures == 1
    backoff_passes()
    before = pacing.server_now(hl)
    assert sent_through(hl, VOLUNTEER) == ("gammu", "sending")  # the probe fails: twice as long
    assert read(hl, "android").failures == 2
    failing_for(120, before)
    phone.start()
    backoff_passes()
    assert sent_through(hl, VOLUNTEER) == ("android", "sending")  # the probe finds the phone back
    assert sent_through(hl, VOLUNTEER2) == ("android", "sending")
    assert read(hl, "android").failures == 0 and len(phone.accepted) == 2
    assert Gate(hl, "android").probe() is None


def test_a_permanent_refusal_says_nothing_about_the_channel(
        sample: Hotline, spool: Path, phone: FakePhone) -> None:
    hl = use(sample, sms_channel="android", android_gateway_url=phone.url,
             android_gateway_user=phone.user, android_gateway_password=phone.password,
             sms_fallback="gammu", gammu_spool=spool)
    phone.answers.extend([400, 400, 400])
    for to in (LEADER, GRID_WORKER, VOLUNTEER):
        assert sent_through(hl, to) == ("android", "failed")
    assert read(hl, "android").failures == 0 and list((spool / "outbox").iterdir()) == []
    assert Gate(hl, "android").probe() is None


def test_the_fallback_is_the_pools_standby_sender(
        sample: Hotline, spool: Path, phone: FakePhone) -> None:
    alone = use(sample, sms_channel="android", android_gateway_url=phone.url)
    assert [s.name for s in alone.pool] == ["android"]
    assert isinstance(get_channel(alone), AndroidChannel)
    paired = use(sample, sms_channel="android", android_gateway_url=phone.url,
                 sms_fallback="gammu", gammu_spool=spool)
    assert [(s.name, s.standby) for s in paired.pool] == [("android", False), ("gammu", True)]
    assert isinstance(get_channel(paired), AndroidChannel)
    assert isinstance(get_channel(paired, "gammu"), GammuChannel)
