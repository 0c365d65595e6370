"""Settings read strictly from the environment, so a wrong value stops start-up with one clear line."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from gateway.private import private_dir

T = TypeVar("T")

SMS_CHANNELS = ("twilio", "outbox", "android", "gammu")
LANGUAGES = ("zh", "en")
ROOT = Path(__file__).resolve().parent.parent


class ConfigError(Exception):
    """A setting has a value the gateway refuses; the message names the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


@dataclass(frozen=True)
class Settings:
    """Every setting the gateway reads, typed; build with `Settings.from_env`."""

    redis_url: str | None = None
    data_dir: Path = Path("var")
    public_url: str = "http://localhost:5000"
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from_number: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_api_base: str = "https://api.twilio.com"
    sms_channel: str = "outbox"
    sms_fallback: str | None = None
    channels_file: Path | None = None  # HOTLINE_CHANNELS_FILE: the pool of senders (gateway.senders)
    default_region: str = "CN"
    language: str = "zh"
    timezone: str = "Asia/Shanghai"
    secret_key: str | None = None
    simulator: bool = False
    sms_rate: float = 1.0
    escalate_after: int = 900
    retry_first: int = 10
    retry_max: int = 600
    retry_for: int = 86400
    remind_after: int = 14400
    # Beyond the contract's table: knobs an operator may need, with safe defaults.
    admin_password: str | None = None
    append_window: int = 3600
    sweep_after: int = 60
    workers: int = 1
    trusted_proxies: int = 0
    voice: str | None = None
    inbound_limit: int = 10
    broadcast_repeat: int = 2  # how many times a loudspeaker script reads the notice
    ledger_refresh: float = 2.0  # webhooks' copy of the ledger is at most this stale (0: none)
    android_gateway_url: str | None = None
    android_gateway_user: str | None = None
    android_gateway_password: str | None = None
    android_gateway_signing_key: str | None = None
    android_gateway_poll: int = 10  # seconds between reads of the phone's inbox; 0 = never
    gammu_spool: Path | None = None
    import_max_rows: int = 20000  # rows one ledger import reads at most
    import_max_cell: int = 2000  # characters in one cell of a ledger import
    templates_dir: Path = field(default=ROOT / "templates")
    # The windows senders' caps count over (an hour, a day); shorter only in tests.
    cap_hour: float = 3600.0
    cap_day: float = 86400.0

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def twilio_configured(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token)

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read settings from `environ` (default: os.environ plus a `.env` file)."""
        if environ is None:
            environ = _environ_with_dotenv()
        env = _Env(environ)
        creds = env.secret("TWILIO_ACCOUNT_SID") and env.secret("TWILIO_AUTH_TOKEN")
        channel = env.choice("HOTLINE_SMS_CHANNEL", SMS_CHANNELS, "twilio" if creds else "outbox")
        fallback = env.choice("HOTLINE_SMS_FALLBACK", SMS_CHANNELS, None)
        settings = cls(
            redis_url=env.text("REDIS_URL"),
            data_dir=Path(env.text("HOTLINE_DATA_DIR") or "var"),
            public_url=env.url("HOTLINE_PUBLIC_URL", "http://localhost:5000"),
            twilio_account_sid=env.secret("TWILIO_ACCOUNT_SID"),
            twilio_auth_token=env.secret("TWILIO_AUTH_TOKEN"),
            twilio_from_number=env.text("TWILIO_FROM_NUMBER"),
            twilio_messaging_service_sid=env.text("TWILIO_MESSAGING_SERVICE_SID"),
            twilio_api_base=env.url("TWILIO_API_BASE", "https://api.twilio.com"),
            sms_channel=channel or "outbox",
            sms_fallback=fallback,
            channels_file=Path(f) if (f := env.text("HOTLINE_CHANNELS_FILE")) else None,
            default_region=env.region("HOTLINE_DEFAULT_REGION", "CN"),
            language=env.choice("HOTLINE_LANGUAGE", LANGUAGES, "zh") or "zh",
            timezone=env.zone("HOTLINE_TIMEZONE", "Asia/Shanghai"),
            secret_key=env.secret("HOTLINE_SECRET_KEY"),
            simulator=env.switch("HOTLINE_SIMULATOR", False),
            sms_rate=env.number("HOTLINE_SMS_RATE", 1.0, float, minimum=0),
            escalate_after=env.number("HOTLINE_ESCALATE_AFTER", 900, int, minimum=1),
            retry_first=env.number("HOTLINE_RETRY_FIRST", 10, int, minimum=0),
            retry_max=env.number("HOTLINE_RETRY_MAX", 600, int, minimum=1),
            retry_for=env.number("HOTLINE_RETRY_FOR", 86400, int, minimum=1),
            remind_after=env.number("HOTLINE_REMIND_AFTER", 14400, int, minimum=1),
            admin_password=env.secret("HOTLINE_ADMIN_PASSWORD"),
            append_window=env.number("HOTLINE_APPEND_WINDOW", 3600, int, minimum=0),
            sweep_after=env.number("HOTLINE_SWEEP_AFTER", 60, int, minimum=1),
            workers=env.number("HOTLINE_WORKERS", 1, int, minimum=1),
            trusted_proxies=env.number("HOTLINE_TRUSTED_PROXIES", 0, int, minimum=0),
            voice=env.text("HOTLINE_VOICE"),
            inbound_limit=env.number("HOTLINE_INBOUND_LIMIT", 10, int, minimum=1),
            broadcast_repeat=env.number("HOTLINE_BROADCAST_REPEAT", 2, int, minimum=1),
            ledger_refresh=env.number("HOTLINE_LEDGER_REFRESH", 2.0, float, minimum=0),
            android_gateway_url=env.url("ANDROID_GATEWAY_URL", None),
            android_gateway_user=env.text("ANDROID_GATEWAY_USER"),
            android_gateway_password=env.secret("ANDROID_GATEWAY_PASSWORD"),
            android_gateway_signing_key=env.secret("ANDROID_GATEWAY_SIGNING_KEY"),
            android_gateway_poll=env.number("ANDROID_GATEWAY_POLL", 10, int, minimum=0),
            gammu_spool=Path(p) if (p := env.text("GAMMU_SPOOL")) else None,
            import_max_rows=env.number("HOTLINE_IMPORT_MAX_ROWS", 20000, int, minimum=1),
            import_max_cell=env.number("HOTLINE_IMPORT_MAX_CELL", 2000, int, minimum=1),
            templates_dir=Path(env.text("HOTLINE_TEMPLATES_DIR") or ROOT / "templates"),
            cap_hour=env.number("HOTLINE_CAP_HOUR", 3600.0, float, minimum=1),
            cap_day=env.number("HOTLINE_CAP_DAY", 86400.0, float, minimum=1),
        )
        settings.check()
        if settings.channels_file is not None:
            from gateway import senders  # it builds on Settings: imported here, not at the top

            senders.load(settings.channels_file)  # a wrong file stops start-up, naming the key
        return settings

    def check(self) -> None:
        """Refuse combinations that cannot work, naming the variable to fix."""
        if self.sms_channel == "twilio":
            if not self.twilio_configured:
                raise ConfigError(
                    "HOTLINE_SMS_CHANNEL",
                    "twilio needs TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN",
                )
            if not (self.twilio_from_number or self.twilio_messaging_service_sid):
                raise ConfigError(
                    "TWILIO_FROM_NUMBER",
                    "set it or TWILIO_MESSAGING_SERVICE_SID: Twilio needs a sender",
                )
        if "android" in (self.sms_channel, self.sms_fallback) and not self.android_gateway_url:
            raise ConfigError("ANDROID_GATEWAY_URL", "the android channel needs the phone's URL")
        if "gammu" in (self.sms_channel, self.sms_fallback) and not self.gammu_spool:
            raise ConfigError("GAMMU_SPOOL", "the gammu channel needs gammu-smsd's spool folder")
        if self.sms_fallback and self.sms_fallback == self.sms_channel:
            raise ConfigError("HOTLINE_SMS_FALLBACK", "must differ from HOTLINE_SMS_CHANNEL")
        if self.retry_first > self.retry_max:
            raise ConfigError("HOTLINE_RETRY_FIRST", "must not exceed HOTLINE_RETRY_MAX")

    def ensure_secret_key(self) -> str:
        """The session-signing key: the setting, else one generated once and kept on disk."""
        return self.secret_key or self._generated("secret_key")

    def webhook_token(self) -> str:
        """The key webhooks are signed with: TWILIO_AUTH_TOKEN, else a local one.

        Without Twilio the phone simulator still signs its requests exactly as
        Twilio would, with a token generated once and kept under the data folder.
        """
        return self.twilio_auth_token or self._generated("webhook_token")

    def _generated(self, name: str) -> str:
        path = self.data_dir / name
        if path.exists():
            return path.read_text().strip()
        private_dir(self.data_dir)
        key = secrets.token_hex(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            return path.read_text().strip()
        with os.fdopen(fd, "w") as fh:
            fh.write(key)
        return key


def _environ_with_dotenv() -> dict[str, str]:
    from dotenv import dotenv_values

    values = {k: v for k, v in dotenv_values(".env").items() if v is not None}
    values.update(os.environ)  # the real environment wins over the file
    return values


class _Env:
    """Tiny typed readers over one environment mapping."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def text(self, name: str) -> str | None:
        value = self.environ.get(name, "").strip()
        return value or None

    def secret(self, name: str) -> str | None:
        direct = self.text(name)
        path = self.text(f"{name}_FILE")
        if direct and path:
            raise ConfigError(name, f"set {name} or {name}_FILE, not both")
        if path:
            try:
                return Path(path).read_text(encoding="utf-8").strip() or None
            except OSError as exc:
                raise ConfigError(f"{name}_FILE", f"cannot read {path}: {exc.strerror}") from exc
        return direct

    def choice(self, name: str, allowed: tuple[str, ...], default: str | None) -> str | None:
        value = self.text(name)
        if value is None:
            return default
        value = value.lower()
        if value not in allowed:
            raise ConfigError(name, f"{value!r} is not one of {', '.join(allowed)}")
        return value

    def switch(self, name: str, default: bool) -> bool:
        value = self.text(name)
        if value is None:
            return default
        table = {"on": True, "true": True, "1": True, "yes": True,
                 "off": False, "false": False, "0": False, "no": False}
        if value.lower() not in table:
            raise ConfigError(name, f"{value!r} is not on or off")
        return table[value.lower()]

    def number(self, name: str, default: T, kind: Callable[[str], T], minimum: float) -> T:
        value = self.text(name)
        if value is None:
            return default
        try:
            number = kind(value)
        except ValueError:
            raise ConfigError(name, f"{value!r} is not a number") from None
        if float(number) < minimum:  # type: ignore[arg-type]
            raise ConfigError(name, f"{value} is below the smallest allowed, {minimum:g}")
        return number

    def url(self, name: str, default: str | None) -> str:
        value = self.text(name)
        if value is None:
            return default  # type: ignore[return-value]
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(name, f"{value!r} is not an http(s) URL")
        return value.rstrip("/")

    def region(self, name: str, default: str) -> str:
        value = (self.text(name) or default).upper()
        if value not in phonenumbers.SUPPORTED_REGIONS:
            raise ConfigError(name, f"{value!r} is not a two-letter region such as CN")
        return value

    def zone(self, name: str, default: str) -> str:
        value = self.text(name) or default
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(name, f"{value!r} is not a time zone such as Asia/Shanghai") from None
        return value
