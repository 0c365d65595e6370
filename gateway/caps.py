"""Caps per sender (per hour, per day), enforced in Redis so that no worker ever sends one too many.

A carrier suspends a card that texts too much, counting over its own windows; counting over
every window that ends at a send (a sliding hour, a sliding day) is never above any fixed
window's count, so it stays under the carrier's whatever its clock. One sorted set per sender
holds when each counted send goes, timed by the Redis server's clock like the pacer.

A send is counted when it is booked (`book`): at its pacing turn, which may be some seconds
ahead. A send that reaches the provider later than its booked time by more than `margin`
is booked again (workers.messages), and every window is counted `margin` longer than it is,
so a worker's stall between its turn and its request never shows as one too many at the
carrier.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway import pacing
from gateway.context import Hotline
from gateway.lua import Script
from gateway.senders import Sender
from gateway.store import KEYS

# How far off a sender's turn may be for it to count as having room: a text goes through
# another whose turn is sooner rather than queue behind a notice's backlog there.
WITHIN = 10.0

_BOOK = Script(__name__, "book")


@dataclass(frozen=True)
class Booking:
    """A turn for one send (`slot`, server time), or how long until the caps have room."""

    slot: float | None
    wait: float = 0.0
    full: bool = False  # no slot because of a cap (else the sender's backlog is long)


def margin(window: float) -> float:
    """How much longer than `window` sends are counted over (a minute for an hour or a day)."""
    return min(60.0, window * 0.05)


def windows(hl: Hotline) -> dict[str, float]:
    return {"hour": hl.settings.cap_hour, "day": hl.settings.cap_day}


def _limits(hl: Hotline, sender: Sender) -> list[tuple[float, int]]:
    """(window, most) for each cap the sender has."""
    lengths = windows(hl)
    return [(lengths[w], most) for w, most in (("hour", sender.per_hour), ("day", sender.per_day))
            if most is not None]


def _caps(hl: Hotline, sender: Sender) -> list[list[float]]:
    """[window counted, most, kept from notices] for each cap."""
    return [[window + margin(window), most, sender.kept(most)]
            for window, most in _limits(hl, sender)]


def book(hl: Hotline, sender: Sender, member: str, *, pace: str, rate: float,
         later: bool = False, bulk: bool = False) -> Booking:
    """The sender's next turn (paced at `rate`, by the key `pace`) with room under its caps,
    the send counted at that turn, if it is within WITHIN seconds; else how long until it
    would be. With `later`, the first turn with room however far off (always a slot).

    A `bulk` send (a notice) queues at the end of the line and leaves each cap's reserve
    (Sender.kept); any other goes ahead of the notices' turns (caps.book.lua)."""
    gap = pacing.interval(rate)
    keep = max(windows(hl).values())
    kind, value, *why = _BOOK(hl.r, sent=KEYS.sent(sender.name), next_slot=pacing.next_key(pace),
                              bulk=KEYS.bulk(sender.name), member=member, caps=_caps(hl, sender),
                              gap=gap, later=int(later), within=WITHIN, keep=keep + margin(keep),
                              lane="bulk" if bulk else "urgent")
    if kind == "slot":
        return Booking(float(value))
    return Booking(None, float(value), full=why == ["cap"])


def late(hl: Hotline, sender: Sender, turn: float) -> bool:
    """Whether a send booked at `turn` is too late now to go on that booking (a stalled worker)."""
    limits = _limits(hl, sender)
    if not limits:
        return False
    return pacing.server_now(hl) - turn > margin(min(window for window, _ in limits))


def release(hl: Hotline, sender: Sender, member: str) -> None:
    """Uncount a booked send that did not go at its turn (it is booked again)."""
    hl.r.zrem(KEYS.sent(sender.name), member)
    hl.r.zrem(KEYS.bulk(sender.name), member)


def counts(hl: Hotline, sender: Sender) -> dict[str, int]:
    """Sends counted over the last hour and the last day (what `hotline channels list` shows),
    including any booked a moment ahead."""
    now = pacing.server_now(hl)
    key = KEYS.sent(sender.name)
    return {w: int(hl.r.zcount(key, now - length, "+inf")) for w, length in windows(hl).items()}
