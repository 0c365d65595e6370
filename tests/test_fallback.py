"""HOTLINE_SMS_FALLBACK: while the primary channel keeps failing, the second one carries the messages."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import messages
from gateway.app import create_app
from gateway.channels import TransportError, get_channel
from gateway.channels import fallback as fallback_policy
from gateway.channels.android.transport import AndroidChannel
from gateway.channels.fallback import FallbackChannel
from gateway.channels.gammu.transport import GammuChannel
from gateway.channels.state import read
from gateway.context import Hotline
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


def test_while_twilio_is_unreachable_the_modem_carries_every_message(
        sample: Hotline, spool: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fallback_policy, "THRESHOLD", 2)
    hl = use(sample, sms_channel="twilio", twilio_account_sid="AC" + "0" * 32,
             twilio_auth_token="t" * 32, twilio_from_number="+15005550006",
             twilio_api_base=f"http://127.0.0.1:{closed_port()}", sms_fallback="gammu",
             gammu_spool=spool)
    queued = [messages.queue_sms(hl, n, f"求助#10{i}：请接单", kind="offer")
              for i, n in enumerate((LEADER, GRID_WORKER, VOLUNTEER))]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        run_due(hl)  # the first try fails, its retry fails again: from then on, the modem
        if all((m := messages.get(hl, q.id)) and m.provider_id for q in queued):
            break
        time.sleep(0.2)
    records = [messages.get(hl, q.id) for q in queued]
    assert [(m.channel, m.status) for m in records if m] == [("gammu", "sending")] * 3
    assert sorted(p.name for p in (spool / "outbox").iterdir()) == sorted(
        m.provider_id for m in records if m)
    health = create_app(hl.settings, url=hl.url).test_client().get("/healthz").get_json()
    assert health["channels"]["twilio"]["state"] == "failing: using gammu"
    assert (health["channels"]["gammu"]["role"], health["channels"]["gammu"]["outbox"]) == (
        "fallback", 3)


def test_the_primary_is_tried_now_and_then_and_takes_over_when_back(
        sample: Hotline, spool: Path, phone: FakePhone) -> None:
    hl = use(sample, sms_channel="android", android_gateway_url=phone.url,
             android_gateway_user=phone.user, android_gateway_password=phone.password,
             sms_fallback="gammu", gammu_spool=spool)
    phone.stop()

    def channel() -> FallbackChannel:
        return FallbackChannel(hl, AndroidChannel(hl), lambda: GammuChannel(hl), threshold=2,
                               probe_every=0.3)

    def send(to: str) -> tuple[str, str]:
        c = channel()
        receipt = c.send(messages.queue_sms(hl, to, "测试", kind="reply"))
        return c.name, receipt.status

    with pytest.raises(TransportError):
        send(LEADER)  # one failure: the worker retries it
    assert send(GRID_WORKER) == ("gammu", "sending")  # two in a row: the modem takes over
    assert send(VOLUNTEER) == ("gammu", "sending")  # the first probe of the phone fails too
    failures = read(hl, "android").failures
    assert send(VOLUNTEER2) == ("gammu", "sending")  # no probe due: the phone is not even tried
    assert read(hl, "android").failures == failures == 3
    phone.start()
    time.sleep(0.35)
    assert send(VOLUNTEER) == ("android", "sending")  # the probe finds the phone back
    assert send(VOLUNTEER2) == ("android", "sending")
    assert read(hl, "android").failures == 0 and len(phone.accepted) == 2


def test_a_permanent_refusal_says_nothing_about_the_channel(
        sample: Hotline, spool: Path, phone: FakePhone) -> None:
    hl = use(sample, sms_channel="android", android_gateway_url=phone.url,
             android_gateway_user=phone.user, android_gateway_password=phone.password,
             sms_fallback="gammu", gammu_spool=spool)
    phone.answers.extend([400, 400, 400])
    for _ in range(3):
        with pytest.raises(TransportError) as refused:
            get_channel(hl).send(messages.queue_sms(hl, VOLUNTEER, "x", kind="reply"))
        assert refused.value.permanent
    assert read(hl, "android").failures == 0 and list((spool / "outbox").iterdir()) == []


def test_only_the_primary_is_watched_and_only_when_a_fallback_is_set(
        sample: Hotline, spool: Path, phone: FakePhone) -> None:
    alone = use(sample, sms_channel="android", android_gateway_url=phone.url)
    assert isinstance(get_channel(alone), AndroidChannel)
    paired = use(sample, sms_channel="android", android_gateway_url=phone.url,
                 sms_fallback="gammu", gammu_spool=spool)
    assert isinstance(get_channel(paired), FallbackChannel)
    assert isinstance(get_channel(paired, "gammu"), GammuChannel)
