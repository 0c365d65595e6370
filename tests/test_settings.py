"""Settings from the environment: defaults, secrets from files, and one clear line for a bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.settings import ConfigError, Settings


def test_defaults_follow_the_contract() -> None:
    s = Settings.from_env({})
    assert s.redis_url is None
    assert s.sms_channel == "outbox"
    assert s.language == "zh"
    assert s.timezone == "Asia/Shanghai"
    assert s.default_region == "CN"
    assert (s.escalate_after, s.remind_after) == (900, 14400)
    assert (s.retry_first, s.retry_max, s.retry_for) == (10, 600, 86400)
    assert s.sms_rate == 1.0
    assert s.public_url == "http://localhost:5000"


def test_twilio_credentials_make_twilio_the_default_channel() -> None:
    s = Settings.from_env({"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t",
                           "TWILIO_FROM_NUMBER": "+15005550006"})
    assert s.sms_channel == "twilio"


def test_timings_are_seconds_so_tests_can_shrink_them() -> None:
    s = Settings.from_env({"HOTLINE_ESCALATE_AFTER": "2", "HOTLINE_RETRY_FIRST": "1",
                           "HOTLINE_SMS_RATE": "0"})
    assert (s.escalate_after, s.retry_first, s.sms_rate) == (2, 1, 0.0)


def test_a_secret_may_come_from_a_file(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    s = Settings.from_env({"TWILIO_AUTH_TOKEN_FILE": str(token)})
    assert s.twilio_auth_token == "s3cret"


@pytest.mark.parametrize(("env", "variable"), [
    ({"HOTLINE_LANGUAGE": "fr"}, "HOTLINE_LANGUAGE"),
    ({"HOTLINE_SMS_CHANNEL": "pigeon"}, "HOTLINE_SMS_CHANNEL"),
    ({"HOTLINE_SMS_RATE": "fast"}, "HOTLINE_SMS_RATE"),
    ({"HOTLINE_ESCALATE_AFTER": "-5"}, "HOTLINE_ESCALATE_AFTER"),
    ({"HOTLINE_TIMEZONE": "Mars/Olympus"}, "HOTLINE_TIMEZONE"),
    ({"HOTLINE_DEFAULT_REGION": "XX"}, "HOTLINE_DEFAULT_REGION"),
    ({"HOTLINE_PUBLIC_URL": "hotline.example.org"}, "HOTLINE_PUBLIC_URL"),
    ({"HOTLINE_SIMULATOR": "maybe"}, "HOTLINE_SIMULATOR"),
    ({"HOTLINE_SMS_CHANNEL": "twilio"}, "HOTLINE_SMS_CHANNEL"),
    ({"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t"}, "TWILIO_FROM_NUMBER"),
    ({"TWILIO_AUTH_TOKEN_FILE": "/nonexistent/token"}, "TWILIO_AUTH_TOKEN_FILE"),
    ({"TWILIO_AUTH_TOKEN": "a", "TWILIO_AUTH_TOKEN_FILE": "/x"}, "TWILIO_AUTH_TOKEN"),
])
def test_a_bad_value_names_its_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}: ")
    assert "\n" not in str(caught.value)


def test_generated_secret_key_is_kept_across_starts(tmp_path: Path) -> None:
    s = Settings.from_env({"HOTLINE_DATA_DIR": str(tmp_path)})
    first = s.ensure_secret_key()
    assert len(first) == 64
    assert Settings.from_env({"HOTLINE_DATA_DIR": str(tmp_path)}).ensure_secret_key() == first
