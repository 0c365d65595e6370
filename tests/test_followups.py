"""Follow-up texts survive a failed attempt: a text that could not be queued is queued by the retry, once."""

from __future__ import annotations

from typing import Any

import pytest

from gateway import messages, tickets
from gateway.context import Hotline
from tests.conftest import RESIDENT, VOLUNTEER
from workers import followups


def test_a_followup_that_failed_to_queue_is_queued_by_the_retry_and_only_once(
        sample: Hotline, monkeypatch: pytest.MonkeyPatch) -> None:
    t = tickets.open_ticket(sample, RESIDENT, "medicine", "sms", notify=False)
    tickets.take(sample, t.code, VOLUNTEER)
    real = messages.queue_sms
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> messages.Message:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("redis went away mid-job")
        return real(*args, **kwargs)

    monkeypatch.setattr(messages, "queue_sms", flaky)
    with pytest.raises(ConnectionError):
        followups.taken(t.code, VOLUNTEER)
    followups.taken(t.code, VOLUNTEER)  # RQ's retry
    followups.taken(t.code, VOLUNTEER)  # and a duplicate run
    coming = [m for m in messages.list_messages(sample) if m.to == RESIDENT and m.kind == "coming"]
    assert len(coming) == 1
