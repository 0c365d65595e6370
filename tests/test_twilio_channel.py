"""The Twilio channel against a fake Twilio over real HTTP: what it sends, and how each failure is sorted."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import messages
from gateway.channels import TransportError, get_channel
from gateway.channels.twilio.transport import BaseUrlHttpClient, TwilioChannel
from gateway.context import Hotline
from gateway.embedded import EmbeddedRedis
from gateway.settings import Settings
from tests.conftest import PUBLIC_URL, VOLUNTEER, drain, twilio_settings
from tests.fake_twilio import (
    ACCOUNT_SID,
    FROM_NUMBER,
    SERVER_ERROR,
    SERVICE_SID,
    TOO_MANY,
    Answer,
    FakeTwilio,
)


@pytest.fixture
def settings(redis_server: EmbeddedRedis, data_dir: Path, fake: FakeTwilio) -> Settings:
    return twilio_settings(redis_server.url, data_dir, fake)


OFFER = "求助#1042：联合村第一网格送药。回复\"接 1042\"接单"


def outbound(hl: Hotline, body: str = OFFER) -> messages.Message:
    return messages.queue_sms(hl, VOLUNTEER, body, kind="offer", ticket="1042")


def test_a_text_goes_to_twilio_with_sender_body_and_status_callback(hl: Hotline,
                                                                     fake: FakeTwilio) -> None:
    message = outbound(hl)
    drain(hl)
    [sent] = fake.sends()
    assert sent.form == {"To": VOLUNTEER, "From": FROM_NUMBER, "Body": message.body,
                         "StatusCallback": f"{PUBLIC_URL}/twilio/status?m={message.id}"}
    record = messages.get(hl, message.id)
    assert record is not None
    assert (record.status, record.provider_id, record.attempts, record.channel, record.error) == (
        "sent", fake.accepted[0]["sid"], 1, "twilio", "")


def test_the_messaging_service_is_the_sender_when_there_is_no_from_number(
        hl: Hotline, fake: FakeTwilio) -> None:
    hl.settings = hl.settings.with_overrides(twilio_from_number=None,
                                             twilio_messaging_service_sid=SERVICE_SID)
    get_channel(hl).send(outbound(hl))
    [sent] = fake.sends()
    assert sent.form["MessagingServiceSid"] == SERVICE_SID
    assert "From" not in sent.form


@pytest.mark.parametrize("code", [21211, 21610, 21614])
def test_a_refused_number_is_a_permanent_error(hl: Hotline, fake: FakeTwilio, code: int) -> None:
    fake.fail_next(code)
    with pytest.raises(TransportError) as caught:
        get_channel(hl).send(outbound(hl))
    assert (True, str(code)) == (caught.value.permanent, caught.value.code)


@pytest.mark.parametrize(("answer", "code"), [(SERVER_ERROR, "20500"), (TOO_MANY, "20429"),
                                              (Answer(503, 20503), "20503"),
                                              (Answer(429, 0), "429")])
def test_busy_or_broken_twilio_is_a_transient_error(hl: Hotline, fake: FakeTwilio, answer: Answer,
                                                    code: str) -> None:
    fake.fail_next(answer)
    with pytest.raises(TransportError) as caught:
        get_channel(hl).send(outbound(hl))
    assert (False, code) == (caught.value.permanent, caught.value.code)


def test_a_slow_answer_times_out_as_a_transient_error(hl: Hotline, fake: FakeTwilio,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TwilioChannel, "timeout", 0.3)
    fake.delay = 1.0
    with pytest.raises(TransportError) as caught:
        get_channel(hl).send(outbound(hl))
    assert (caught.value.permanent, caught.value.code) == (False, "timeout")


def test_a_refused_connection_is_a_transient_error(hl: Hotline, fake: FakeTwilio) -> None:
    fake.stop_listening()
    with pytest.raises(TransportError) as caught:
        get_channel(hl).send(outbound(hl))
    assert (caught.value.permanent, caught.value.code) == (False, "refused")
    assert fake.received == []


def test_wrong_credentials_wait_for_the_operator_instead_of_failing_the_text(
        hl: Hotline, fake: FakeTwilio) -> None:
    hl.settings = hl.settings.with_overrides(twilio_auth_token="not-the-token")
    with pytest.raises(TransportError) as caught:
        get_channel(hl).send(outbound(hl))
    assert (caught.value.permanent, caught.value.code) == (False, "20003")


def test_lookup_finds_a_text_twilio_accepted_but_never_answered_for(
        hl: Hotline, fake: FakeTwilio, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TwilioChannel, "timeout", 0.3)
    fake.delay = 1.0
    message = outbound(hl)
    drain(hl)  # the send times out: transient, the job is retried later
    record = messages.get(hl, message.id)
    assert record is not None
    assert (record.status, record.attempts, record.provider_id) == ("queued", 1, "")
    fake.delay = 0
    found = TwilioChannel(hl).lookup(record)
    assert found is not None and fake.accepted[0]["sid"] == found.provider_id
    assert TwilioChannel(hl).lookup(outbound(hl, "another text")) is None


def test_the_retry_after_a_timeout_records_the_accepted_text_instead_of_sending_it_again(
        hl: Hotline, fake: FakeTwilio, monkeypatch: pytest.MonkeyPatch) -> None:
    from workers.messages import send_message

    monkeypatch.setattr(TwilioChannel, "timeout", 0.3)
    fake.delay = 1.0
    message = outbound(hl)
    with pytest.raises(TransportError):
        send_message(message.id)
    fake.delay = 0
    assert send_message(message.id) == "found"  # what RQ's retry runs
    record = messages.get(hl, message.id)
    assert record is not None
    assert len(fake.sends()) == 1
    assert (record.status, record.provider_id, record.attempts) == ("sent", fake.accepted[0]["sid"], 1)


@pytest.mark.parametrize(("base", "url", "expected"), [
    ("http://127.0.0.1:8765", "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json",
     "http://127.0.0.1:8765/2010-04-01/Accounts/AC1/Messages.json"),
    ("https://sms.example.net/twilio/", "https://api.sydney.au1.twilio.com/2010-04-01/x.json",
     "https://sms.example.net/twilio/2010-04-01/x.json"),
    ("https://api.twilio.com", "https://api.twilio.com/2010-04-01/x.json",
     "https://api.twilio.com/2010-04-01/x.json"),
    ("http://127.0.0.1:8765", "https://studio.example.com/v1/x", "https://studio.example.com/v1/x"),
])
def test_twilio_api_base_replaces_twilios_host_and_nothing_else(base: str, url: str,
                                                                 expected: str) -> None:
    assert expected == BaseUrlHttpClient(base, 5).rewrite(url)


def test_the_fake_finds_a_request_that_breaks_twilios_description(fake: FakeTwilio) -> None:
    import requests

    answer = requests.post(f"{fake.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
                           data={"From": FROM_NUMBER, "Body": "no To", "StatusCallBack": "x"},
                           auth=(ACCOUNT_SID, fake.auth_token), timeout=5)
    assert answer.status_code == 400
    problems = fake.problems()
    assert any("'To' is a required property" in p for p in problems)
    assert any("StatusCallBack" in p for p in problems)
    fake.received.clear()  # seen: the fixture's own check must not fail the test
