"""Which sender carries a message: the recipient's own village's first, then any with room, never over a cap.

The order a message tries the pool in: a reply goes back through the sender the text came in
by; then the senders serving the recipient's village, then its town; then every other sender;
standby senders last. A sender is passed over while it is failing, while its quiet hours
hold a notice, or while it has no room (its caps, or a turn more than caps.WITHIN seconds
off); the first that has room books the send and carries it. When none has, the message is
booked for the soonest turn with room, and the choice says why it waits, which `hotline
messages list` shows; with every sender it may use failing, it parks until one is back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import time

from gateway.senders import Sender

NOTICE = "notice"  # the one purpose that quiet hours hold back (offers and replies go)
FAILING_RETRY = 60.0  # seconds a message waits when every sender that could take it is failing


@dataclass(frozen=True)
class Choice:
    """A sender to send through now, or how long to wait and why."""

    sender: Sender | None
    wait: float = 0.0
    why: str = ""
    # When failing senders were all that stood in the way: the first of them, whose outage
    # the message waits out (parked until some sender is back).
    held_by: Sender | None = None


@dataclass(frozen=True)
class Recipient:
    """What routing needs to know of whom a message goes to (from the ledger)."""

    village: str = ""
    town: str = ""


def order(pool: Sequence[Sender], recipient: Recipient, received_by: str = "") -> list[Sender]:
    """The senders in the order a message tries them."""
    def rank(sender: Sender) -> int:
        if received_by and sender.name == received_by:
            return 0
        if sender.standby:
            return 4
        if recipient.village and recipient.village in sender.villages:
            return 1
        return 2 if sender.serves("", recipient.town) else 3

    return sorted(pool, key=rank)  # sorted() is stable: the file's order within each rank


def choose(pool: Sequence[Sender], recipient: Recipient, *, purpose: str, local_time: time,
           failing: Callable[[Sender], bool], book: Callable[[Sender, bool], tuple[float, str]],
           received_by: str = "") -> Choice:
    """The first sender in `order` that can carry the message now, its send counted by
    `book(sender, later)`: (0.0, "") booked; else the seconds until the sender has room and
    why ("at its cap", "busy": its turn is far off). When every sender it may use is at its
    cap or busy, the message is booked for the soonest room (`later`), through the sender
    that has it first, and the choice says why it waits."""
    waits: list[tuple[float, str]] = []
    failed: list[Sender] = []
    full: list[tuple[float, Sender]] = []
    for sender in order(pool, recipient, received_by):
        if failing(sender):
            failed.append(sender)
            waits.append((FAILING_RETRY, f"{sender.name} failing"))
            continue
        if purpose == NOTICE and sender.is_quiet(local_time):
            waits.append((_until_end_of_quiet(sender, local_time), f"{sender.name} quiet hours"))
            continue
        wait, reason = book(sender, False)
        if wait == 0.0:
            return Choice(sender)
        waits.append((wait, f"{sender.name} {reason}"))
        full.append((wait, sender))
    if not waits:
        return Choice(None, FAILING_RETRY, "no sender")
    why = "; ".join(why for _, why in waits)
    if len(failed) == len(waits):
        return Choice(None, FAILING_RETRY, why, held_by=failed[0])
    for wait, sender in sorted(full, key=lambda pair: pair[0]):
        if book(sender, True)[0] == 0.0:
            return Choice(sender, wait, why)  # booked for the soonest turn with room
    return Choice(None, min(wait for wait, _ in waits), why)


def _until_end_of_quiet(sender: Sender, now: time) -> float:
    assert sender.quiet is not None
    end = sender.quiet[1]
    seconds = (end.hour * 3600 + end.minute * 60) - (now.hour * 3600 + now.minute * 60 + now.second)
    return float(seconds % 86400) or 1.0
