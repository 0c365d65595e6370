"""Routing across the pool: a village's own sender first, a reply back the way it came, caps never passed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import time

from gateway import caps, routing
from gateway.context import Hotline
from gateway.routing import Recipient
from gateway.senders import Sender

NOON = time(12, 0)
LIANHE = Sender("lianhe", "android", villages=("联合村",), per_hour=2)
TUANJIE = Sender("tuanjie", "android", villages=("团结村",), per_hour=2)
TOWN = Sender("town", "gammu", towns=("归流河镇",), per_hour=1)
SPARE = Sender("outbox", "outbox", standby=True)
POOL = (TOWN, TUANJIE, SPARE, LIANHE)


def ok(_sender: Sender) -> bool:
    return False


def booker(hl: Hotline, mid: str, purpose: str = "offer") -> Callable[[Sender, bool], tuple[float, str]]:
    """Routing's `book`, as the worker's: the caps' booking, unpaced (only the caps decide)."""
    def book(sender: Sender, later: bool) -> tuple[float, str]:
        booking = caps.book(hl, sender, mid, pace=sender.name, rate=0.0, later=later,
                            bulk=purpose == routing.NOTICE)
        if booking.slot is None:
            return booking.wait, "at its cap" if booking.full else "busy"
        return 0.0, ""
    return book


def choose(hl: Hotline, pool: tuple[Sender, ...], mid: str, who: Recipient,
           **kw: object) -> routing.Choice:
    options: dict[str, object] = {"purpose": "offer", "local_time": NOON, "failing": ok, **kw}
    return routing.choose(pool, who, book=booker(hl, mid, str(options["purpose"])),
                          **options)  # type: ignore[arg-type]


def send(hl: Hotline, mid: str, who: Recipient, **kw: object) -> routing.Choice:
    return choose(hl, POOL, mid, who, **kw)


def test_a_message_goes_through_the_recipients_own_village_first(hl: Hotline) -> None:
    assert send(hl, "m1", Recipient("联合村", "归流河镇")).sender == LIANHE
    assert send(hl, "m2", Recipient("团结村", "归流河镇")).sender == TUANJIE
    assert send(hl, "m3", Recipient("", "归流河镇")).sender == TOWN  # the town's, for a township


def test_a_full_village_sender_passes_its_messages_to_the_others_then_the_standby(hl: Hotline) -> None:
    who = Recipient("联合村", "")
    carried = [send(hl, f"m{i}", who).sender for i in range(6)]
    # lianhe's 2, then the others in the file's order (town 1, tuanjie 2), then the standby.
    assert [s.name if s else None for s in carried] == ["lianhe", "lianhe", "town", "tuanjie",
                                                         "tuanjie", "outbox"]
    assert all(caps.counts(hl, s)["hour"] <= (s.per_hour or 10**9) for s in POOL)


def test_when_every_sender_is_full_the_message_waits_and_says_why(hl: Hotline) -> None:
    pool = (LIANHE, TOWN)
    for i in range(3):
        assert choose(hl, pool, f"m{i}", Recipient("联合村")).sender is not None
    waiting = choose(hl, pool, "m9", Recipient("联合村"))
    # booked for the soonest room (lianhe's, the first of the two to have it), an hour off
    # (the window counted with its margin, and the millisecond after the filler leaves it)
    assert waiting.sender == LIANHE and 3000 < waiting.wait <= 3600 + caps.margin(3600) + 0.01
    assert waiting.why == "lianhe at its cap; town at its cap"


def test_a_reply_goes_back_through_the_sender_that_received_the_text(hl: Hotline) -> None:
    choice = send(hl, "r1", Recipient("联合村", ""), received_by="tuanjie")
    assert choice.sender == TUANJIE


def test_a_failing_sender_is_passed_over(hl: Hotline) -> None:
    choice = send(hl, "m1", Recipient("联合村", ""), failing=lambda s: s.name == "lianhe")
    assert choice.sender == TOWN
    assert caps.counts(hl, LIANHE)["hour"] == 0  # nothing counted against the one that failed


def test_quiet_hours_hold_notices_but_not_offers(hl: Hotline) -> None:
    night = Sender("night", "android", villages=("联合村",), quiet=(time(22, 0), time(7, 0)))
    pool = (night,)
    late = time(23, 30)
    held = choose(hl, pool, "n1", Recipient("联合村"), purpose="notice", local_time=late)
    assert held.sender is None and held.wait == 7.5 * 3600 and "quiet hours" in held.why
    offer = choose(hl, pool, "o1", Recipient("联合村"), purpose="offer", local_time=late)
    assert offer.sender == night
