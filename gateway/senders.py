"""The pool of senders (HOTLINE_CHANNELS_FILE): who may text whom, how fast and how much, read strictly.

A county texts through many SIM cards and accounts, each with its carrier's caps. This module
is the file's model: each `[[sender]]` table becomes a `Sender` (its kind, its connection, the
villages or towns it serves first, its rate and caps, its quiet hours for notices). Without the
file, today's single-channel settings describe a pool of one (and HOTLINE_SMS_FALLBACK a
standby). A wrong file stops start-up with one line naming the sender and the key.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any

from gateway.settings import ConfigError, Settings

KINDS = ("android", "gammu", "twilio", "outbox")
VARIABLE = "HOTLINE_CHANNELS_FILE"

# Each kind's connection keys (lower case, as the variables without their prefix) and the
# Settings field each fills; `_file` keys hold a secret's path, read at load.
CONNECTION: dict[str, dict[str, str]] = {
    "android": {"url": "android_gateway_url", "user": "android_gateway_user",
                "password_file": "android_gateway_password",
                "signing_key_file": "android_gateway_signing_key", "poll": "android_gateway_poll"},
    "gammu": {"spool": "gammu_spool"},
    "twilio": {"account_sid": "twilio_account_sid", "auth_token_file": "twilio_auth_token",
               "from_number": "twilio_from_number",
               "messaging_service_sid": "twilio_messaging_service_sid", "api_base": "twilio_api_base"},
    "outbox": {},
}
REQUIRED = {"android": ("url",), "gammu": ("spool",), "twilio": ("account_sid", "auth_token_file"),
            "outbox": ()}
COMMON = ("name", "kind", "villages", "towns", "rate", "per_hour", "per_day", "reserve", "quiet",
          "standby")
RESERVE = 0.05  # of each cap, kept from notices for offers, replies and codes
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}\Z")
_QUIET = re.compile(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)\Z")


@dataclass(frozen=True)
class Sender:
    """One phone, modem or account of the pool."""

    name: str
    kind: str
    connection: dict[str, Any] = field(default_factory=dict, compare=False)
    villages: tuple[str, ...] = ()
    towns: tuple[str, ...] = ()
    rate: float = 1.0            # messages per second; 0: unpaced
    per_hour: int | None = None  # caps, over any hour and any 24 hours
    per_day: int | None = None
    reserve: float = RESERVE     # the share of each cap notices leave to the help texts
    quiet: tuple[time, time] | None = None  # notices wait in these hours (may span midnight)
    standby: bool = False        # used only when no other sender can carry a message

    def kept(self, most: int) -> int:
        """How many of a cap of `most` sends notices leave to the help texts: `reserve` of it,
        at least one, and never the whole cap."""
        if self.reserve <= 0:
            return 0
        return min(most - 1, max(1, math.ceil(most * self.reserve)))

    def serves(self, village: str, town: str) -> bool:
        """Whether this sender serves the recipient's village (or town) first."""
        return (bool(village) and village in self.villages) or (bool(town) and town in self.towns)

    def is_quiet(self, at: time) -> bool:
        """Whether `at` (local time) falls in the quiet hours: notices through this sender wait."""
        if self.quiet is None:
            return False
        start, end = self.quiet
        return start <= at < end if start <= end else (at >= start or at < end)

    def settings(self, base: Settings) -> Settings:
        """The settings its channel is built from: the hotline's, with this sender's connection."""
        values = {CONNECTION[self.kind][key]: value for key, value in self.connection.items()}
        return base.with_overrides(sms_channel=self.kind, sms_fallback=None, sms_rate=self.rate,
                                   **values)


def pool_of_one(settings: Settings) -> tuple[Sender, ...]:
    """Today's single-channel settings as a pool: the channel, and the fallback on standby."""
    main = Sender(name=settings.sms_channel, kind=settings.sms_channel, rate=settings.sms_rate)
    if not settings.sms_fallback:
        return (main,)
    return (main, Sender(name=settings.sms_fallback, kind=settings.sms_fallback,
                         rate=settings.sms_rate, standby=True))


def load(path: Path) -> tuple[Sender, ...]:
    """The senders a HOTLINE_CHANNELS_FILE describes, in its order."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(VARIABLE, f"cannot read {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(VARIABLE, f"{path} is not TOML: {exc}") from None
    unknown = set(data) - {"sender"}
    if unknown:
        raise ConfigError(VARIABLE, f"{path}: unknown table {sorted(unknown)[0]!r}; "
                                    "each sender is a [[sender]] table")
    tables = data.get("sender")
    if not isinstance(tables, list) or not tables:
        raise ConfigError(VARIABLE, f"{path} has no [[sender]] table")
    senders = tuple(_sender(table, i + 1, path.parent) for i, table in enumerate(tables))
    names = [s.name for s in senders]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(VARIABLE, f"two senders are called {name!r}")
    if all(s.standby for s in senders):
        raise ConfigError(VARIABLE, "every sender is on standby: nothing would carry a message")
    return senders


def _sender(table: Any, number: int, folder: Path) -> Sender:
    where = f"sender {number}"
    if not isinstance(table, dict):
        raise ConfigError(VARIABLE, f"{where} is not a table")
    name = table.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(VARIABLE, f"{where}: name must be lower-case letters, digits, - or _ "
                                    f"(up to 40), got {name!r}")
    where = f"sender {name!r}"
    kind = table.get("kind")
    if kind not in KINDS:
        raise ConfigError(VARIABLE, f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    allowed = set(COMMON) | set(CONNECTION[kind])
    for key in table:
        if key not in allowed:
            raise ConfigError(VARIABLE, f"{where}: unknown key {key!r} for a {kind} sender")
    for key in REQUIRED[kind]:
        if not table.get(key):
            raise ConfigError(VARIABLE, f"{where}: a {kind} sender needs {key!r}")
    connection: dict[str, Any] = {}
    for key in CONNECTION[kind]:
        if key in table:
            connection[key] = _connection_value(where, key, table[key], folder)
    return Sender(name=name, kind=kind, connection=connection,
                  villages=_names(where, "villages", table.get("villages", [])),
                  towns=_names(where, "towns", table.get("towns", [])),
                  rate=_number(where, "rate", table.get("rate", 1.0), minimum=0),
                  per_hour=_cap(where, "per_hour", table.get("per_hour")),
                  per_day=_cap(where, "per_day", table.get("per_day")),
                  reserve=_share(where, table.get("reserve", RESERVE)),
                  quiet=_quiet(where, table.get("quiet")),
                  standby=_flag(where, "standby", table.get("standby", False)))


def _connection_value(where: str, key: str, value: Any, folder: Path) -> Any:
    if key == "poll":
        return int(_number(where, key, value, minimum=0))
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(VARIABLE, f"{where}: {key} must be text")
    if key.endswith("_file"):
        secret = (folder / value).expanduser()
        try:
            text = secret.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(VARIABLE, f"{where}: cannot read {key} {secret}: {exc}") from None
        if not text:
            raise ConfigError(VARIABLE, f"{where}: {key} {secret} is empty")
        return text
    if key == "spool":
        return (folder / value).expanduser()
    if key in ("url", "api_base") and not value.startswith(("http://", "https://")):
        raise ConfigError(VARIABLE, f"{where}: {key} must start with http:// or https://")
    return value.strip().rstrip("/") if key in ("url", "api_base") else value.strip()


def _names(where: str, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(VARIABLE, f"{where}: {key} must be a list of names")
    return tuple(v.strip() for v in value)


def _number(where: str, key: str, value: Any, *, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise ConfigError(VARIABLE, f"{where}: {key} must be a number of at least {minimum}, "
                                    f"got {value!r}")
    return float(value)


def _share(where: str, value: Any) -> float:
    share = _number(where, "reserve", value, minimum=0)
    if share > 0.5:
        raise ConfigError(VARIABLE, f"{where}: reserve is a share of each cap, from 0 to 0.5, "
                                    f"got {value!r}")
    return share


def _cap(where: str, key: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(VARIABLE, f"{where}: {key} must be a whole number of at least 1, "
                                    f"got {value!r}")
    return value


def _quiet(where: str, value: Any) -> tuple[time, time] | None:
    if value is None or value == "":
        return None
    found = _QUIET.match(value) if isinstance(value, str) else None
    if not found:
        raise ConfigError(VARIABLE, f"{where}: quiet must be like \"22:00-07:00\", got {value!r}")
    h1, m1, h2, m2 = (int(x) for x in found.groups())
    if (h1, m1) == (h2, m2):
        raise ConfigError(VARIABLE, f"{where}: quiet {value!r} starts where it ends")
    return time(h1, m1), time(h2, m2)


def _flag(where: str, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(VARIABLE, f"{where}: {key} must be true or false, got {value!r}")
    return value


def configured(settings: Settings, path: Path | None) -> tuple[Sender, ...]:
    """The pool: the file's senders when HOTLINE_CHANNELS_FILE is set, else a pool of one."""
    return load(path) if path is not None else pool_of_one(settings)

