"""`POST /twilio/status`: delivery reports land on their message; a bounced offer goes to the next person."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from gateway import messages, tickets
from gateway.context import Hotline
from gateway.embedded import EmbeddedRedis
from gateway.registry import Person
from gateway.registry_file import store_people
from gateway.settings import Settings
from gateway.store import KEYS
from tests.conftest import RESIDENT, VOLUNTEER, drain, post_twilio, twilio_settings
from tests.fake_twilio import ACCOUNT_SID, FROM_NUMBER, FakeTwilio

NEWBIE = "+8613800000005"


@pytest.fixture
def settings(redis_server: EmbeddedRedis, data_dir: Path, fake: FakeTwilio) -> Settings:
    return twilio_settings(redis_server.url, data_dir, fake)


def report(sid: str, status: str, **extra: str) -> dict[str, str]:
    """A message status callback as Twilio posts it."""
    return {"AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01", "From": FROM_NUMBER,
            "To": VOLUNTEER, "MessageSid": sid, "SmsSid": sid, "MessageStatus": status,
            "SmsStatus": status, **extra}


def sent_text(hl: Hotline) -> messages.Message:
    message = messages.queue_sms(hl, VOLUNTEER, "通知：明天接种", kind="notice")
    drain(hl)
    found = messages.get(hl, message.id)
    assert found is not None and found.provider_id
    return found


def test_delivered_is_recorded_on_the_message(client: FlaskClient, hl: Hotline,
                                              fake: FakeTwilio) -> None:
    message = sent_text(hl)
    answer = post_twilio(client, "/twilio/status", report(message.provider_id, "delivered"))
    assert answer.status_code == 200
    found = messages.get(hl, message.id)
    assert found is not None and found.status == "delivered"


def test_a_late_sent_never_moves_a_delivered_message_back(client: FlaskClient, hl: Hotline,
                                                          fake: FakeTwilio) -> None:
    message = sent_text(hl)
    for status in ("delivered", "sent", "queued"):
        post_twilio(client, "/twilio/status", report(message.provider_id, status))
    found = messages.get(hl, message.id)
    assert found is not None and found.status == "delivered"


def test_failed_is_recorded_with_twilios_error_code(client: FlaskClient, hl: Hotline,
                                                    fake: FakeTwilio) -> None:
    message = sent_text(hl)
    post_twilio(client, "/twilio/status", report(message.provider_id, "failed", ErrorCode="30005"))
    found = messages.get(hl, message.id)
    assert found is not None and (found.status, found.error) == ("failed", "30005")


def test_an_undelivered_offer_goes_to_the_next_member_once(client: FlaskClient, sample: Hotline,
                                                           fake: FakeTwilio) -> None:
    ticket = tickets.open_ticket(sample, RESIDENT, "medicine", "sms")
    drain(sample)
    store_people(sample.r, [Person(phone=NEWBIE, name="孙丽", role="volunteer", village="联合村",
                                   grid="第一网格", town="归流河镇")])
    mid = sample.r.hget(KEYS.ticket_messages(ticket.code), f"offer:0:{VOLUNTEER}")
    offer = messages.get(sample, mid)
    assert offer is not None
    params = report(offer.provider_id, "undelivered", ErrorCode="30003")
    assert post_twilio(client, "/twilio/status", params).status_code == 200
    assert post_twilio(client, "/twilio/status", params).status_code == 200  # Twilio retried
    drain(sample)
    assert fake.accepted_to()[-1] == NEWBIE
    assert fake.accepted_to().count(NEWBIE) == 1
    bounced = messages.get(sample, mid)
    assert bounced is not None and (bounced.status, bounced.error) == ("undelivered", "30003")
    assert NEWBIE in tickets.offered_to(sample, ticket.code)


def test_a_report_for_a_text_whose_sid_was_never_written_down_records_it(
        client: FlaskClient, hl: Hotline, fake: FakeTwilio) -> None:
    message = messages.queue_sms(hl, VOLUNTEER, "通知：明天接种", kind="notice")
    messages.update(hl, message.id, status="sending", attempts=1)  # the worker died mid-request
    post_twilio(client, f"/twilio/status?m={message.id}", report("SM" + "5" * 32, "sent"))
    found = messages.get(hl, message.id)
    assert found is not None and (found.status, found.provider_id) == ("sent", "SM" + "5" * 32)
    drain(hl)  # the job, run again, sees the sid and sends nothing
    assert fake.sends() == []


def test_an_unknown_message_answers_200_and_changes_nothing(client: FlaskClient, hl: Hotline,
                                                            fake: FakeTwilio) -> None:
    before = messages.list_messages(hl)
    answer = post_twilio(client, "/twilio/status?m=m99", report("SM" + "0" * 32, "undelivered"))
    assert answer.status_code == 200
    assert messages.list_messages(hl) == before
    assert hl.queue.count == 0


def test_a_forged_report_is_refused_and_changes_nothing(client: FlaskClient, hl: Hotline,
                                                        fake: FakeTwilio) -> None:
    message = sent_text(hl)
    answer = post_twilio(client, "/twilio/status", report(message.provider_id, "failed"),
                         token="not-the-token")
    assert answer.status_code == 403
    found = messages.get(hl, message.id)
    assert found is not None and found.status == "sent"


def test_a_call_status_report_goes_to_the_voice_side(client: FlaskClient, hl: Hotline,
                                                     fake: FakeTwilio,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import gateway.calls

    seen: list[dict[str, str]] = []
    monkeypatch.setattr(gateway.calls, "call_status", lambda hl, form: seen.append(form))
    params = {"CallSid": "CA" + "1" * 32, "CallStatus": "completed", "From": RESIDENT,
              "AccountSid": ACCOUNT_SID, "CallDuration": "30"}
    assert post_twilio(client, "/twilio/status", params).status_code == 200
    assert seen == [params]


def test_a_call_status_report_is_answered_when_the_voice_side_is_not_installed(
        client: FlaskClient, hl: Hotline, fake: FakeTwilio, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gateway.calls", None)  # import fails as if absent
    params = {"CallSid": "CA" + "1" * 32, "CallStatus": "completed", "AccountSid": ACCOUNT_SID}
    assert post_twilio(client, "/twilio/status", params).status_code == 200


def test_status_reports_arriving_together_never_move_a_message_back_or_into_two_indexes(
        hl: Hotline) -> None:
    import threading

    from gateway.store import KEYS

    for round_ in range(10):
        message = messages.queue_sms(hl, "+8613800000003", f"通知{round_}", kind="notice")
        messages.update(hl, message.id, status="sent", provider_id=f"SM{round_:032d}")
        barrier = threading.Barrier(3)

        def report_(status: str, sid: str = f"SM{round_:032d}",
                    barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            messages.record_delivery(hl, sid, status)

        threads = [threading.Thread(target=report_, args=(s,))
                   for s in ("sent", "delivered", "sent")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        final = messages.get(hl, message.id)
        assert final is not None and final.status == "delivered"
        listed = [s for s in messages.STATUSES
                  if hl.r.zscore(KEYS.messages_by_status(s), message.id) is not None]
        assert listed == ["delivered"]


def in_status_indexes(hl: Hotline, mid: str) -> list[str]:
    return [s for s in messages.STATUSES if hl.r.zscore(KEYS.messages_by_status(s), mid) is not None]


def test_the_senders_own_sent_after_a_delivered_report_keeps_delivered_and_one_index(
        hl: Hotline) -> None:
    message = messages.queue_sms(hl, VOLUNTEER, "求助#1001", kind="offer")
    messages.update(hl, message.id, status="delivered")  # the callback won the race
    after = messages.advance(hl, message.id, "sent", provider_id="SM" + "a" * 32, error="")
    assert after is not None and after.status == "delivered"
    assert after.provider_id == "SM" + "a" * 32
    assert messages.by_provider_id(hl, "SM" + "a" * 32) == after
    assert in_status_indexes(hl, message.id) == ["delivered"]
    moved = messages.advance(hl, messages.queue_sms(hl, VOLUNTEER, "x", kind="offer").id, "sent")
    assert moved is not None and moved.status == "sent"
    assert in_status_indexes(hl, moved.id) == ["sent"]
    before = hl.r.hgetall(KEYS.message(message.id))
    again = messages.record_delivery(hl, "SM" + "a" * 32, "sent")  # a late, lesser report
    assert again is not None and again.status == "delivered"
    assert hl.r.hgetall(KEYS.message(message.id)) == before  # nothing to change: nothing written
    assert messages.advance(hl, "m999999", "sent") is None  # no such record: nothing written
    assert not hl.r.exists(KEYS.message("m999999"))
