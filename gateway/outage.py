"""A sender's outage, kept in Redis so every worker agrees: which message probes it, what waits on it.

After a transient failure (refused, timed out, 429, 5xx) a sender is in outage with the
message that failed as its probe. Between probes (the probe went on through another sender)
the probe is "" and the next message routed there after `next` becomes it (times by the Redis
server's clock, which every worker shares). Messages that no sender can take park in the held
set of the first sender they wait on. The first success
through a sender ends its outage (workers.messages). Every change is one Lua script, so
none races; the send path, the sweeper and every health report read this one state.
"""

from __future__ import annotations

from gateway.context import Hotline
from gateway.lua import Script
from gateway.messages import Message
from gateway.senders import Sender
from gateway.store import KEYS

OPEN, CLOSED, PROBE = 0, 1, 2  # what Gate.state says of a sender for one message

_PASS = Script(__name__, "pass")
_CLOSE = Script(__name__, "close")
_HAND = Script(__name__, "hand")
_PARK = Script(__name__, "park")
_OPEN = Script(__name__, "open")


class Gate:
    """One sender's outage state in Redis; every change is one Lua script, so none races."""

    def __init__(self, hl: Hotline, sender: str) -> None:
        self.hl = hl
        self.gate, self.held = KEYS.gate(sender), KEYS.held(sender)

    def state(self, mid: str) -> int:
        """OPEN, CLOSED (in outage), or PROBE: `mid` is (now) the one message to try it."""
        return int(_PASS(self.hl.r, gate=self.gate, mid=mid))

    def fail(self, message: Message) -> int:
        """Record a transient failure; the failures in a row if this message is (now) the
        probe, else 0."""
        return int(_CLOSE(self.hl.r, gate=self.gate, mid=message.id))

    def hand_over(self, mid: str, after: float) -> None:
        """The probe goes on elsewhere; the next message routed here `after` seconds probes."""
        _HAND(self.hl.r, gate=self.gate, mid=mid, after=after)

    def park(self, message: Message) -> bool:
        """Park the message until an outage ends; False if this one has ended meanwhile."""
        return bool(_PARK(self.hl.r, gate=self.gate, held=self.held, mid=message.id,
                          score=message.created_at))

    def probe(self) -> str | None:
        """The probe's id; "" between probes (handed over); None when not in outage."""
        value: str | None = self.hl.r.hget(self.gate, "probe")
        return value

    def next_probe(self) -> float | None:
        """When the next message routed here probes it (between probes)."""
        value = self.hl.r.hget(self.gate, "next")
        return float(value) if value else None

    def open(self) -> list[tuple[str, float]]:
        """End the outage; returns the parked messages (id, creation time), oldest first."""
        return _parked(_OPEN(self.hl.r, gate=self.gate, held=self.held, end_outage=1))

    def release(self) -> list[tuple[str, float]]:
        """Let the parked messages go (another sender is up), the outage going on."""
        return _parked(_OPEN(self.hl.r, gate=self.gate, held=self.held, end_outage=0))


def _parked(reply: list[str]) -> list[tuple[str, float]]:
    return [(mid, float(score)) for mid, score in zip(reply[::2], reply[1::2], strict=True)]


def in_outage(hl: Hotline, sender: Sender) -> bool:
    return bool(hl.r.hexists(KEYS.gate(sender.name), "probe"))


def backoff(hl: Hotline, failures: int) -> float:
    """Seconds before a sender in outage is probed again: the retry policy's gaps."""
    s = hl.settings
    return float(min(max(s.retry_first, 1) * 2 ** max(failures - 1, 0), s.retry_max))
