"""The Android channel against a fake SMS Gateway for Android on 127.0.0.1, speaking its HTTP API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from flask.testing import FlaskClient

from gateway import messages, tickets
from gateway.app import create_app
from gateway.channels import TransportError, get_channel
from gateway.channels.android.events import handle_event, poll
from gateway.channels.android.transport import AndroidChannel, android_id
from gateway.context import Hotline
from gateway.store import KEYS
from tests.conftest import GRID_WORKER, LEADER, RESIDENT, STRANGER, VOLUNTEER, VOLUNTEER2, drain
from tests.fake_android import CHINA, FakePhone, LiveApp, run_due, sign
from tests.fake_twilio import wait_until
from workers import runtime


@pytest.fixture
def phone() -> Iterator[FakePhone]:
    fake = FakePhone().start()
    yield fake
    fake.stop()


@pytest.fixture
def ahl(sample: Hotline, phone: FakePhone) -> Hotline:
    """The hotline with the phone as its SMS channel (jobs run in-process use it too)."""
    settings = sample.settings.with_overrides(
        sms_channel="android", android_gateway_url=phone.url, android_gateway_user=phone.user,
        android_gateway_password=phone.password, android_gateway_signing_key=phone.signing_key)
    hotline = Hotline(settings, url=sample.url)
    runtime.use(hotline)
    return hotline


@pytest.fixture
def live(ahl: Hotline, phone: FakePhone) -> Iterator[LiveApp]:
    """The gateway on a real port, with the phone's webhooks pointed at it."""
    server = LiveApp(create_app(ahl.settings, url=ahl.url)).start()
    AndroidChannel(ahl).register_webhooks(server.url + "/android/webhook")
    yield server
    server.stop()


@pytest.fixture
def aclient(ahl: Hotline) -> FlaskClient:
    return create_app(ahl.settings, url=ahl.url).test_client()


def post_event(client: FlaskClient, event: dict[str, object], key: str = "k3y",
               stamp: str | None = None, signature: str | None = None) -> object:
    body = json.dumps(event, ensure_ascii=False).encode()
    stamp = stamp if stamp is not None else str(int(time.time()))
    return client.post("/android/webhook", data=body, content_type="application/json", headers={
        "X-Timestamp": stamp, "X-Signature": signature or sign(key, body, stamp)})


def received(sender: str, text: str, event_id: str = "ev1", at: str = "2026-03-01T09:00:00.000+08:00",
             field: str = "phoneNumber") -> dict[str, object]:
    return {"event": "sms:received", "id": event_id, "deviceId": "d",
            "payload": {"messageId": "abc123", "message": text, field: sender, "receivedAt": at}}


def test_a_message_goes_out_with_basic_auth_and_our_own_id(ahl: Hotline, phone: FakePhone) -> None:
    phone.auto_send = False
    m = messages.queue_sms(ahl, VOLUNTEER, "求助#1001：测试", kind="offer")
    drain(ahl)
    record = messages.get(ahl, m.id)
    assert record is not None and record.status == "sending" and record.channel == "android"
    assert record.provider_id == android_id(m) == f"hl-{m.id}-{int(m.created_at * 1000)}"
    assert phone.accepted[record.provider_id]["phoneNumbers"] == [VOLUNTEER]
    assert phone.accepted[record.provider_id]["textMessage"] == {"text": "求助#1001：测试"}


def test_a_retry_the_phone_already_has_is_answered_409_and_counts_as_sent(
        ahl: Hotline, phone: FakePhone) -> None:
    phone.auto_send = False
    m = messages.queue_sms(ahl, VOLUNTEER, "hello", kind="offer")
    channel = AndroidChannel(ahl)
    first = channel.send(m)
    again = channel.send(m)  # as after a worker died between the phone's 202 and our record
    assert first == again and again.status == "sending"
    assert list(phone.accepted) == [first.provider_id]


def test_errors_are_sorted_into_transient_and_permanent(ahl: Hotline, phone: FakePhone) -> None:
    m = messages.queue_sms(ahl, VOLUNTEER, "hello", kind="offer")
    channel = AndroidChannel(ahl, connect_timeout=1, read_timeout=2)
    for status, permanent in ((500, False), (429, False), (401, False), (400, True)):
        phone.answers.append(status)
        with pytest.raises(TransportError) as caught:
            channel.send(m)
        assert (caught.value.code, caught.value.permanent) == (str(status), permanent)
    phone.stop()
    with pytest.raises(TransportError) as caught:
        channel.send(m)
    assert caught.value.code == "unreachable" and not caught.value.permanent
    assert ahl.r.hget(KEYS.channel("android"), "failures") == "4"  # 400 says nothing of the phone


def test_a_signed_text_opens_a_ticket_and_the_reply_is_queued_at_once(
        ahl: Hotline, aclient: FlaskClient) -> None:
    response = post_event(aclient, received("13900000001", "我要买降压药"))
    assert response.status_code == 200  # type: ignore[attr-defined]
    [ticket] = tickets.list_tickets(ahl)
    assert (ticket.caller, ticket.channel, ticket.text) == (RESIDENT, "sms", "我要买降压药")
    replies = [m for m in messages.list_messages(ahl) if m.direction == "out" and m.to == RESIDENT]
    assert len(replies) == 1 and f"#{ticket.code}" in replies[0].body
    assert replies[0].status == "queued" and replies[0].kind == "reply"


@pytest.mark.parametrize(("how", "change"), [
    ("wrong key", {"key": "not-the-key"}),
    ("no signature", {"signature": " "}),
    ("no timestamp", {"stamp": ""}),
    ("a week-old timestamp", {"stamp": str(int(time.time()) - 7 * 86400)}),
])
def test_a_request_not_signed_by_the_phone_gets_403_and_changes_nothing(
        ahl: Hotline, aclient: FlaskClient, how: str, change: dict[str, str]) -> None:
    response = post_event(aclient, received(RESIDENT, "我要买药"), **change)  # type: ignore[arg-type]
    assert response.status_code == 403, how  # type: ignore[attr-defined]
    assert messages.list_messages(ahl) == [] and tickets.list_tickets(ahl) == []
    assert ahl.r.keys(KEYS.seen("*", "*")) == []


def test_a_repeated_delivery_changes_nothing_but_the_same_text_later_is_new(
        ahl: Hotline, aclient: FlaskClient) -> None:
    for event in (received(RESIDENT, "要买药", "ev1"),
                  received(RESIDENT, "要买药", "ev1"),                   # the same event again
                  received(RESIDENT, "要买药", "ev2"),                   # re-sent by an inbox refresh
                  received("+86 139 0000 0001", "要买药", "ev3",         # the same, written otherwise
                           at="2026-03-01T01:00:00Z", field="sender")):
        assert post_event(aclient, event).status_code == 200  # type: ignore[attr-defined]
    assert len([m for m in messages.list_messages(ahl) if m.direction == "in"]) == 1
    post_event(aclient, received(RESIDENT, "要买药", "ev4", at="2026-03-01T09:30:00.000+08:00"))
    assert len([m for m in messages.list_messages(ahl) if m.direction == "in"]) == 2
    assert len(tickets.list_tickets(ahl)) == 1  # the later text joined the open ticket


def test_the_sender_is_read_from_sender_or_phone_number(ahl: Hotline, aclient: FlaskClient) -> None:
    post_event(aclient, received(STRANGER, "帮帮我", "a", field="sender"))
    post_event(aclient, received(RESIDENT, "帮帮我", "b", field="phoneNumber"))
    assert {t.caller for t in tickets.list_tickets(ahl)} == {STRANGER, RESIDENT}


def test_status_reports_move_the_message_forward_never_back(
        ahl: Hotline, phone: FakePhone, aclient: FlaskClient) -> None:
    phone.auto_send = False
    m = messages.queue_sms(ahl, VOLUNTEER, "hello", kind="reply")
    drain(ahl)
    ident = android_id(m)

    def report(name: str, event_id: str, **extra: str) -> str:
        response = post_event(aclient, {"event": name, "id": event_id, "payload": {
            "messageId": ident, "phoneNumber": VOLUNTEER, **extra}})
        assert response.status_code == 200  # type: ignore[attr-defined]
        status = messages.get(ahl, m.id)
        assert status is not None
        return status.status

    assert report("sms:delivered", "s1") == "delivered"
    assert report("sms:sent", "s2") == "delivered"
    assert report("sms:failed", "s3", reason="RESULT_ERROR_GENERIC_FAILURE") == "delivered"
    other = messages.queue_sms(ahl, VOLUNTEER2, "hello", kind="reply")
    drain(ahl)
    post_event(aclient, {"event": "sms:failed", "id": "s4", "payload": {
        "messageId": android_id(other), "reason": "RESULT_ERROR_NO_SERVICE"}})
    failed = messages.get(ahl, other.id)
    assert failed is not None and failed.status == "failed" and "NO_SERVICE" in failed.error
    unknown = post_event(aclient, {"event": "sms:sent", "id": "s5", "payload": {"messageId": "x"}})
    assert unknown.status_code == 200  # type: ignore[attr-defined]


def test_a_report_quicker_than_the_worker_is_asked_to_come_again(
        ahl: Hotline, aclient: FlaskClient) -> None:
    m = messages.queue_sms(ahl, VOLUNTEER, "hello", kind="reply")
    messages.update(ahl, m.id, status="sending")  # the worker is between the 202 and its record
    event = {"event": "sms:sent", "id": "e1", "payload": {"messageId": android_id(m)}}
    response = post_event(aclient, event)
    assert response.status_code == 503  # type: ignore[attr-defined]
    messages.update(ahl, m.id, status="sending", provider_id=android_id(m))
    assert post_event(aclient, event).status_code == 200  # type: ignore[attr-defined]
    after = messages.get(ahl, m.id)
    assert after is not None and after.status == "sent"


def test_webhooks_are_retried_until_the_gateway_answers_and_handled_once(
        ahl: Hotline, phone: FakePhone, live: LiveApp) -> None:
    live.stop()
    event = phone.receive(RESIDENT, "家里停暖气了")
    # The first attempt has been refused (its thread may start late on a busy machine).
    wait_until(lambda: any(e == event["id"] for e, _ in phone.attempts))
    live.start()  # same port: the phone's next retry gets through
    phone.wait_idle()
    statuses = [s for e, s in phone.attempts if e == event["id"]]
    assert statuses[0] == 0 and statuses[-1] == 200 and statuses.count(200) == 1
    phone.deliver(event, live.url + "/android/webhook")  # and once more for good measure
    phone.wait_idle()
    assert len(tickets.list_tickets(ahl)) == 1


def test_the_inbox_poll_finds_what_webhooks_missed_and_nothing_twice(
        ahl: Hotline, phone: FakePhone, live: LiveApp) -> None:
    phone.receive(RESIDENT, "水管冻住了", webhook=False)
    phone.receive(STRANGER, "我是新来的，需要送菜", webhook=False)
    assert poll(ahl) == 2
    assert poll(ahl) == 0
    assert {t.caller for t in tickets.list_tickets(ahl)} == {RESIDENT, STRANGER}
    late = phone.inbox[0]  # the webhook for the first text finally arrives: nothing new
    phone.emit("sms:received", {"messageId": late["id"], "message": late["contentPreview"],
                                "phoneNumber": RESIDENT, "receivedAt": datetime.fromisoformat(
                                    late["createdAt"]).astimezone(CHINA).isoformat()})
    phone.wait_idle()
    assert len([m for m in messages.list_messages(ahl) if m.direction == "in"]) == 2


def test_register_webhooks_points_the_four_events_at_the_public_url(
        ahl: Hotline, phone: FakePhone, data_dir: object) -> None:
    env = {**os.environ, "REDIS_URL": ahl.url, "HOTLINE_DATA_DIR": str(data_dir),
           "HOTLINE_PUBLIC_URL": "https://hotline.example.org", "HOTLINE_SMS_CHANNEL": "android",
           "ANDROID_GATEWAY_URL": phone.url, "ANDROID_GATEWAY_USER": phone.user,
           "ANDROID_GATEWAY_PASSWORD": phone.password, "ANDROID_GATEWAY_SIGNING_KEY": "k3y"}
    done = subprocess.run([sys.executable, "-m", "gateway.cli", "android", "register-webhooks"],
                          env=env, text=True, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert {(w["event"], w["url"]) for w in phone.webhooks.values()} == {
        (e, "https://hotline.example.org/android/webhook")
        for e in ("sms:received", "sms:sent", "sms:delivered", "sms:failed")}


def test_a_long_chinese_text_comes_in_whole_and_goes_out_whole(
        ahl: Hotline, phone: FakePhone, live: LiveApp) -> None:
    long_text = "老伴发烧三天了，家里的退烧药和降压药都吃完了，" * 4  # 100 characters: two SMS parts
    phone.receive(RESIDENT, long_text)
    phone.wait_idle()
    [ticket] = tickets.list_tickets(ahl)
    [inbound] = [m for m in messages.list_messages(ahl) if m.direction == "in"]
    assert inbound.body == long_text and len(ticket.text) == len(long_text)
    m = messages.queue_sms(ahl, RESIDENT, long_text + f"#{ticket.code}", kind="reply")
    drain(ahl)
    phone.wait_idle()
    body = phone.accepted[android_id(m)]
    assert body["textMessage"]["text"] == long_text + f"#{ticket.code}"
    record = messages.get(ahl, m.id)
    assert record is not None and record.status == "delivered"


def test_an_outage_of_the_phone_loses_nothing_and_sends_each_message_once(
        ahl: Hotline, phone: FakePhone, live: LiveApp) -> None:
    phone.stop()
    queued = [messages.queue_sms(ahl, n, f"通知{i}", kind="notice")
              for i, n in enumerate((LEADER, GRID_WORKER, VOLUNTEER))]
    drain(ahl)  # the phone is away: one message probes on the retry policy, the others wait
    assert all((m := messages.get(ahl, q.id)) and m.status in ("queued", "sending")
               and not m.provider_id for q in queued)
    assert phone.accepted == {}
    phone.start()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        run_due(ahl)
        phone.wait_idle()
        if all((m := messages.get(ahl, q.id)) and m.status == "delivered" for q in queued):
            break
        time.sleep(0.2)
    assert [messages.get(ahl, q.id).status for q in queued] == ["delivered"] * 3  # type: ignore[union-attr]
    assert sorted(b["phoneNumbers"][0] for b in phone.accepted.values()) == sorted(
        (LEADER, GRID_WORKER, VOLUNTEER))


def test_the_whole_loop_resident_to_volunteer_over_the_phone(
        ahl: Hotline, phone: FakePhone, live: LiveApp) -> None:
    """Twilio off: a text opens a ticket, the team is told through the same SIM, one takes and closes."""
    def texts_to(number: str) -> list[str]:
        return [b["textMessage"]["text"] for b in phone.accepted.values()
                if b["phoneNumbers"] == [number]]

    phone.receive("13900000001", "1")  # the medicine digit, from a phone that drops the +86
    phone.wait_idle()
    [ticket] = tickets.list_tickets(ahl)
    drain(ahl)
    phone.wait_idle()
    assert any(f"#{ticket.code}" in t for t in texts_to(RESIDENT))
    assert all(any(f"#{ticket.code}" in t for t in texts_to(n)) for n in (VOLUNTEER, VOLUNTEER2))
    phone.receive(VOLUNTEER, f"接 {ticket.code}")
    phone.wait_idle()
    drain(ahl)
    phone.wait_idle()
    taken = tickets.get(ahl, ticket.code)
    assert taken is not None and taken.status == "accepted" and taken.accepted_by == VOLUNTEER
    assert len(texts_to(VOLUNTEER2)) >= 2  # the offer, then "taken by 王芳"
    phone.receive(VOLUNTEER, f"完成 {ticket.code}")
    phone.wait_idle()
    drain(ahl)
    phone.wait_idle()
    closed = tickets.get(ahl, ticket.code)
    assert closed is not None and closed.status == "done"
    out = [m for m in messages.list_messages(ahl) if m.direction == "out"]
    assert out and all(m.channel == "android" and m.status == "delivered" for m in out)
    assert phone.problems == []  # every request as the app's swagger.json describes it


def test_the_channel_is_registered_by_name(ahl: Hotline) -> None:
    assert get_channel(ahl).name == "android"
    assert isinstance(get_channel(ahl, "android"), AndroidChannel)
    assert handle_event(ahl, {"event": "system:ping", "payload": {}}) == "ignored"


def test_a_received_text_with_half_a_character_in_its_json_is_handled_not_retried_forever(
        ahl: Hotline, aclient: FlaskClient) -> None:
    # The phone's JSON may escape a lone surrogate ("\ud800"): valid JSON, not encodable text.
    event = received(RESIDENT, "1 要\ud800降压药", event_id="ev-\ud800")
    body = json.dumps(event, ensure_ascii=True).encode()
    stamp = str(int(time.time()))
    answer = aclient.post("/android/webhook", data=body, content_type="application/json",
                          headers={"X-Timestamp": stamp, "X-Signature": sign("k3y", body, stamp)})
    assert answer.status_code == 200, answer.data
    assert answer.get_json() == {"outcome": "handled"}
    found = tickets.list_tickets(ahl)
    assert [(t.caller, t.text) for t in found] == [(RESIDENT, "要降压药")]


def test_the_inbox_poll_sends_dates_the_app_parses(ahl: Hotline, phone: FakePhone) -> None:
    phone.receive(RESIDENT, "水管冻住了", webhook=False)
    assert poll(ahl) == 1  # today's isoformat() sent microseconds: 400 "Invalid from datetime"
    assert phone.problems == []


def test_a_text_seen_by_webhook_and_by_inbox_gives_one_ticket_and_one_reply(
        ahl: Hotline, phone: FakePhone, live: LiveApp) -> None:
    phone.receive(STRANGER, "我需要送菜")
    phone.wait_idle()
    assert poll(ahl) == 0  # the inbox's text:<signed> is the webhook's hex messageId
    assert len(tickets.list_tickets(ahl)) == 1
    assert len([m for m in messages.list_messages(ahl) if m.direction == "out"
                and m.to == STRANGER]) == 1


@pytest.mark.parametrize("late", [timedelta(minutes=20), timedelta(hours=6)])
def test_a_text_stamped_by_the_network_long_before_it_reached_the_phone_is_found(
        ahl: Hotline, phone: FakePhone, late: timedelta) -> None:
    assert poll(ahl) == 0  # the hotline has been polling all along
    phone.receive(RESIDENT, "手机刚开机，我要买药", at=datetime.now(CHINA) - late, webhook=False)
    assert poll(ahl) == 1
    assert poll(ahl) == 0


def test_every_send_carries_an_expiry_that_fits_what_it_says(ahl: Hotline, phone: FakePhone) -> None:
    phone.auto_send = False
    offer = messages.queue_sms(ahl, VOLUNTEER, "求助#1001：谁能接？", kind="offer")
    notice = messages.queue_sms(ahl, LEADER, "通知：明天停水", kind="notice")
    drain(ahl)
    assert 0 < phone.accepted[android_id(offer)]["ttl"] <= ahl.settings.escalate_after
    assert 0 < phone.accepted[android_id(notice)]["ttl"] <= 86400
    assert phone.problems == []


def test_a_message_the_phone_cancelled_counts_as_failed(ahl: Hotline, phone: FakePhone) -> None:
    phone.auto_send = False
    m = messages.queue_sms(ahl, VOLUNTEER, "hello", kind="reply")
    drain(ahl)
    for state in ("Cancelling", "Cancelled"):
        phone.states[android_id(m)] = state
        found = AndroidChannel(ahl).lookup(m)
        assert found is not None and found.status == "failed"


def test_a_long_text_is_delivered_only_when_every_part_is(
        ahl: Hotline, phone: FakePhone, aclient: FlaskClient) -> None:
    phone.auto_send = False
    m = messages.queue_sms(ahl, RESIDENT, "老伴发烧三天了，家里的退烧药和降压药都吃完了，" * 4, kind="reply")
    drain(ahl)
    ident = android_id(m)
    post_event(aclient, {"event": "sms:sent", "id": "p0", "payload": {"messageId": ident,
                                                                    "partsCount": 2}})
    post_event(aclient, {"event": "sms:delivered", "id": "p1", "payload": {"messageId": ident}})
    assert (r := messages.get(ahl, m.id)) is not None and r.status == "sent"
    post_event(aclient, {"event": "sms:delivered", "id": "p2", "payload": {"messageId": ident}})
    assert (r := messages.get(ahl, m.id)) is not None and r.status == "delivered"


def test_healthz_shows_the_phones_own_health_its_inbox_and_the_last_poll(
        ahl: Hotline, phone: FakePhone, aclient: FlaskClient) -> None:
    poll(ahl)
    android = aclient.get("/healthz").get_json()["channels"]["android"]
    assert android["phone"]["version"] == "1.68.0" and android["phone"]["status"] == "pass"
    assert android["inbox_readable"] == "yes" and android["last_poll"] == "0 new of 0 read"


def test_an_app_older_than_1_59_is_named_as_the_reason_the_inbox_cannot_be_read(
        ahl: Hotline, phone: FakePhone, aclient: FlaskClient) -> None:
    phone.version = "1.55.0"
    with pytest.raises(TransportError) as caught:
        poll(ahl)
    assert caught.value.code == "old-app" and "1.59" in str(caught.value)
    android = aclient.get("/healthz").get_json()["channels"]["android"]
    assert "older than 1.59" in android["inbox_readable"]


def test_one_worker_at_a_time_reads_the_phone_each_period(ahl: Hotline) -> None:
    from gateway.channels.watch import Watcher

    first, second = Watcher(ahl, channels={"android"}), Watcher(ahl, channels={"android"})
    assert first.android_every == 10
    assert first._android_turn(2.5) and not second._android_turn(2.5)
    off = Watcher(Hotline(ahl.settings.with_overrides(android_gateway_poll=0), url=ahl.url))
    assert "android" not in off.channels


def test_the_phone_refuses_webhooks_to_plain_http_other_than_127_0_0_1(
        ahl: Hotline, phone: FakePhone) -> None:
    with pytest.raises(TransportError):
        AndroidChannel(ahl).register_webhooks("http://192.168.1.5:8000/android/webhook")
    assert AndroidChannel(ahl).register_webhooks("http://127.0.0.1:8000/android/webhook")
