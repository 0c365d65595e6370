"""One function for "now", so every timestamp comes from the same place and is UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo


def now() -> datetime:
    return datetime.now(UTC)


def timestamp() -> float:
    return now().timestamp()


def from_timestamp(ts: float | str) -> datetime:
    return datetime.fromtimestamp(float(ts), UTC)


def local_iso(ts: float | str | None, tz: ZoneInfo) -> str | None:
    """ISO 8601 with the offset of `tz` (the contract's `created_at`)."""
    if ts in (None, ""):
        return None
    assert ts is not None
    return from_timestamp(ts).astimezone(tz).isoformat(timespec="seconds")
