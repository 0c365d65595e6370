"""How each sender has been doing lately (failures in a row, last error, inbox reads), kept in Redis."""

from __future__ import annotations

from dataclasses import dataclass

from gateway import clock
from gateway.context import Hotline
from gateway.store import KEYS


@dataclass(frozen=True)
class ChannelState:
    """Consecutive send failures (reset by a success), the last error, and the poller's news."""

    failures: int = 0
    first_failure: float | None = None
    last_failure: float | None = None
    last_error: str = ""
    last_ok: float | None = None
    poll_ok: float | None = None
    poll_error: str = ""

    def failing(self, threshold: int, window: float, now: float | None = None) -> bool:
        """At least `threshold` failures in a row, the latest within `window` seconds."""
        now = clock.timestamp() if now is None else now
        return (self.failures >= threshold and self.last_failure is not None
                and now - self.last_failure <= window)


def _num(value: str | None) -> float | None:
    return float(value) if value else None


def read(hl: Hotline, name: str) -> ChannelState:
    d = hl.r.hgetall(KEYS.channel(name))
    return ChannelState(
        failures=int(d.get("failures") or 0), first_failure=_num(d.get("first_failure")),
        last_failure=_num(d.get("last_failure")), last_error=d.get("last_error", ""),
        last_ok=_num(d.get("last_ok")), poll_ok=_num(d.get("poll_ok")),
        poll_error=d.get("poll_error", ""),
    )


def record_ok(hl: Hotline, name: str) -> None:
    key = KEYS.channel(name)
    with hl.r.pipeline(transaction=True) as pipe:
        pipe.hset(key, mapping={"failures": "0", "last_ok": str(clock.timestamp())})
        pipe.hdel(key, "first_failure", "last_error")
        pipe.execute()


def record_failure(hl: Hotline, name: str, error: str) -> int:
    """Count one more failure in a row; returns how many there have been since the last success."""
    key = KEYS.channel(name)
    now = str(clock.timestamp())
    with hl.r.pipeline(transaction=True) as pipe:
        pipe.hincrby(key, "failures", 1)
        pipe.hsetnx(key, "first_failure", now)
        pipe.hset(key, mapping={"last_failure": now, "last_error": error[:200]})
        count = pipe.execute()[0]
    return int(count)


def record_poll(hl: Hotline, name: str, error: str = "") -> None:
    """The inbound poller's last look: when it last worked, or what stopped it."""
    key = KEYS.channel(name)
    if error:
        hl.r.hset(key, "poll_error", error[:200])
    else:
        hl.r.hset(key, mapping={"poll_ok": str(clock.timestamp()), "poll_error": ""})


def get_field(hl: Hotline, name: str, field: str) -> str | None:
    value: str | None = hl.r.hget(KEYS.channel(name), field)
    return value


def set_field(hl: Hotline, name: str, field: str, value: str) -> None:
    hl.r.hset(KEYS.channel(name), field, value)
