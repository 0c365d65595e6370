"""Caps per sender (per hour, per day), enforced in Redis so that no worker ever sends one too many.

A carrier suspends a card that texts too much, counting over its own windows; counting over
every window that ends now (a sliding hour, a sliding day) is never above any fixed window's
count, so it stays under the carrier's whatever its clock. One sorted set per sender holds
when each counted send went, timed by the Redis server's clock like the pacer.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway import pacing
from gateway.context import Hotline
from gateway.lua import Script
from gateway.senders import Sender
from gateway.store import KEYS

HOUR = 3600.0
DAY = 86400.0
_TAKE = Script(__name__, "take")


def _caps(sender: Sender, windows: Mapping[str, float] | None) -> list[list[float]]:
    lengths = {"hour": HOUR, "day": DAY, **(windows or {})}
    return [[lengths[w], most] for w, most in (("hour", sender.per_hour), ("day", sender.per_day))
            if most is not None]


def take(hl: Hotline, sender: Sender, member: str, *,
         windows: Mapping[str, float] | None = None) -> float:
    """Count one send (`member`, the message's id) if the sender has room: 0.0; else the
    seconds until it has. `windows` shortens the hour and the day (tests: time is a setting)."""
    caps = _caps(sender, windows)
    if not caps:
        return 0.0
    return float(_TAKE(hl.r, sent=KEYS.sent(sender.name), member=member, caps=caps))


def counts(hl: Hotline, sender: Sender, *, windows: Mapping[str, float] | None = None
           ) -> dict[str, int]:
    """Sends counted over the last hour and the last day (what `hotline channels list` shows)."""
    lengths = {"hour": HOUR, "day": DAY, **(windows or {})}
    now = pacing.server_now(hl)
    key = KEYS.sent(sender.name)
    return {w: int(hl.r.zcount(key, now - lengths[w], "+inf")) for w in ("hour", "day")}
