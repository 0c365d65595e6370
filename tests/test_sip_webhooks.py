"""The agent's webhook client signs exactly as Twilio does, and reports an unreachable web."""

from __future__ import annotations

import pytest
import requests
from twilio.request_validator import RequestValidator

from gateway.sip import webhooks


class FakeSession(requests.Session):
    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.fail = fail
        self.seen: list[tuple[str, dict[str, str], dict[str, str]]] = []

    def post(self, url, data=None, headers=None, timeout=None, **kw):  # type: ignore[no-untyped-def,override]
        if self.fail:
            raise requests.ConnectionError("no route")
        self.seen.append((url, data, headers))
        r = requests.Response()
        r.status_code = 200
        r._content = b"<Response><Hangup/></Response>"
        return r


def test_post_is_signed_as_twilio() -> None:
    s = FakeSession()
    form = webhooks.CallFields("CA" + "1" * 32, "+8613800138000", "+8610000").form(Digits="1")
    assert webhooks.post(s, "tok", "https://h.example/twilio/voice/menu?step=1", form) == \
        "<Response><Hangup/></Response>"
    url, data, headers = s.seen[0]
    assert data["CallStatus"] == "in-progress" and data["Digits"] == "1"
    assert RequestValidator("tok").validate(url, data, headers["X-Twilio-Signature"])


def test_unreachable_web_raises() -> None:
    with pytest.raises(webhooks.WebUnreachable):
        webhooks.post(FakeSession(fail=True), "tok", "https://h.example/x", {})
