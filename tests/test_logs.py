"""No log line carries a phone number in full, whichever library wrote it."""

from __future__ import annotations

import logging

import pytest

from gateway import logs


def test_numbers_in_any_log_record_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    logs.setup("INFO")
    logging.getLogger("some.library").info("sending to %s and %s", "+8613800001234", "0482-8261234")
    assert "13800001234" not in caplog.text and "8261234" not in caplog.text
    assert "+86 138****1234" in caplog.text


def test_setup_is_idempotent() -> None:
    logs.setup("INFO")
    logs.setup("INFO")
    for handler in logging.getLogger().handlers:
        assert sum(isinstance(f, logs.MaskNumbers) for f in handler.filters) <= 1
