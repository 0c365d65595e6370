"""Security checks across areas: no phone number in full in any log line, whatever path a request takes."""

from __future__ import annotations

import logging
import re

import pytest
from flask.testing import FlaskClient

from gateway import logs, notices, registry
from gateway.context import Hotline
from tests.callsim import FlaskTransport, SimCall
from tests.conftest import (
    AUTH_TOKEN,
    PUBLIC_URL,
    RESIDENT,
    STRANGER,
    VOLUNTEER,
    VOLUNTEER2,
    drain,
    post_twilio,
)

# Any run of 7+ digits in a log line that is not inside an identifier.
DIGITS = re.compile(r"(?<![A-Za-z0-9_-])\+?\d{7,}")


def test_no_log_line_carries_a_number_in_full(client: FlaskClient, sample: Hotline,
                                             caplog: pytest.LogCaptureFixture) -> None:
    logs.setup("DEBUG")
    caplog.set_level(logging.DEBUG)
    SimCall(FlaskTransport(client), RESIDENT, PUBLIC_URL, AUTH_TOKEN).ring().press("1").press("1")
    SimCall(FlaskTransport(client), STRANGER, PUBLIC_URL, AUTH_TOKEN).ring().press("9")
    for n, sender, body in [(1, RESIDENT, "我要降压药 电话13900000001"),
                              (2, VOLUNTEER, "接"), (3, VOLUNTEER2, "接 1001"),
                              (4, VOLUNTEER, "完成 1001"), (5, STRANGER, "STOP")]:
        post_twilio(client, "/twilio/sms", {"MessageSid": f"SM{n:032x}", "From": sender,
                                            "Body": body})
    village = registry.find_village(sample.r, "联合村")
    assert village is not None
    notices.create(sample, village.id, "明天接种疫苗，电话13800000001。", audience="all")
    drain(sample)
    post_twilio(client, "/twilio/sms", {"MessageSid": f"SM{6:032x}", "From": "not a number", "Body": "x"})
    lines = [r.getMessage() for r in caplog.records]  # as the handlers wrote them
    assert len(lines) > 20, "the flow should have logged something to check"
    leaks = [line for line in lines if DIGITS.search(str(line))]
    assert leaks == []
