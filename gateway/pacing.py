"""Messages per second per sender, enforced in Redis so every worker process shares one limit.

Two Lua scripts (pacing.reserve.lua, pacing.claim.lua) over two keys per sender, both timed
by the Redis server's clock so that workers on several machines agree:

- ``reserve`` hands out the next free slot: the sender's slots are one interval apart, in the
  order jobs asked for them, so a backlog drains oldest first.
- ``claim`` is asked just before the provider is called: it lets a send through only at or
  after its slot and while the sender has sent fewer than its rate in the last second (with
  the margin: `window`), and records it; a send whose booked turn an offer took (caps.book)
  learns its new turn there instead. Counting a window rather than spacing each send one
  interval after the last lets a sender that fell behind its turns (a stalled worker) catch
  up: spaced sends never do, and every later turn of a notice is then late by the stall.

A send whose turn is far off does not wait in a worker: the job re-enqueues itself for its
slot (see workers.messages). The interval carries a small margin so that jitter between
the decision and the provider's clock never shows as one message too many in a second.
"""

from __future__ import annotations

from gateway.context import Hotline
from gateway.lua import Script
from gateway.store import KEYS

# Pace a little below the limit: a request reaches the provider some milliseconds after its
# turn (tens on a busy machine), and a provider counting arrivals in any one second must never
# see rate + 1: a margin of m holds while no request is held up more than m / rate seconds.
# Measured: with 3% an eleventh arrival in a second now and then (one sender, 10/s); with 6%,
# a sixth now and then at 5/s when four phones share two busy workers (make bench, pool).
MARGIN = 0.10

_RESERVE = Script(__name__, "reserve")
_CLAIM = Script(__name__, "claim")
_NOW = Script(__name__, "now")


def interval(rate: float) -> float:
    """Seconds between two sends of one sender at `rate` per second (0: no limit)."""
    return (1.0 / rate) * (1.0 + MARGIN) if rate > 0 else 0.0


def server_now(hl: Hotline) -> float:
    """The Redis server's clock, which every worker shares."""
    return float(_NOW(hl.r))


def next_key(sender: str) -> str:
    """Where the sender's next free slot is kept (caps.book hands slots out from it too)."""
    return KEYS.rate(f"sms:{sender}", "next")


def reserve(hl: Hotline, sender: str, rate: float | None = None) -> float:
    """The sender's next free slot (server time); later callers get later slots.
    `rate` defaults to HOTLINE_SMS_RATE."""
    gap = interval(hl.settings.sms_rate if rate is None else rate)
    if not gap:
        return 0.0
    return float(_RESERVE(hl.r, next_slot=next_key(sender), gap=gap))


class Moved(Exception):
    """A send's booked turn was given to an offer; the send is booked at `turn` instead."""

    def __init__(self, turn: float) -> None:
        super().__init__(f"booked again at {turn}")
        self.turn = turn


def window(rate: float) -> tuple[int, float]:
    """(most, span): a sender at `rate` sends at most `most` texts in any `span` seconds, so
    never more than its rate in any one second, with the margin to spare (0: no limit). A
    fractional rate above one is held to its whole part in any second."""
    if rate <= 0:
        return 0, 0.0
    most = max(1, int(rate))
    return most, max(most / rate, 1.0) * (1.0 + MARGIN)


def claim(hl: Hotline, sender: str, slot: float, rate: float | None = None, *,
          sent: str = "", member: str = "") -> float:
    """0 when the send may go now (and it is counted); else the seconds to wait first.
    With `sent` and `member` (its caps' count: caps.book), Moved if its turn was given away."""
    most, span = window(hl.settings.sms_rate if rate is None else rate)
    if not most and not member:
        return 0.0
    answer = _CLAIM(hl.r, recent=KEYS.rate(f"sms:{sender}", "recent"), sent=sent or "-",
                    most=most, span=span, slot=slot, member=member)
    if isinstance(answer, list):
        raise Moved(float(answer[1]))
    return max(0.0, float(answer))
