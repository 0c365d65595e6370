"""Tickets: opened with indexes and history, taken by exactly one volunteer, closed, listed."""

from __future__ import annotations

import threading

import pytest

from gateway import tickets
from gateway.context import Hotline
from gateway.tickets import TicketError
from tests.conftest import (
    HEAD,
    LEADER,
    OTHER_GRID_LEADER,
    RESIDENT,
    STRANGER,
    VOLUNTEER,
    VOLUNTEER2,
)


def test_a_known_callers_ticket_goes_to_their_grid(sample: Hotline) -> None:
    t = tickets.open_ticket(sample, RESIDENT, "medicine", "sms", text="要降压药")
    assert t.code.isdigit() and len(t.code) == 4
    data = t.to_json(sample)
    assert (data["village"], data["grid"], data["status"]) == ("联合村", "第一网格", "new")
    assert data["created_at"].endswith("+08:00")
    assert tickets.history(sample, t.code)[0]["what"] == "opened"


def test_an_unknown_callers_ticket_goes_to_triage(sample: Hotline) -> None:
    t = tickets.open_ticket(sample, STRANGER, "food", "voice")
    data = t.to_json(sample)
    assert data["village"] is None and data["grid"] is None


def test_codes_are_unique_and_short(sample: Hotline) -> None:
    codes = {tickets.open_ticket(sample, RESIDENT, "food", "sms").code for _ in range(50)}
    assert len(codes) == 50 and all(len(c) == 4 for c in codes)


def test_a_ticket_json_has_every_contract_field(sample: Hotline) -> None:
    t = tickets.open_ticket(sample, RESIDENT, "doctor", "voice", recording_url="https://r/1")
    data = t.to_json(sample)
    for key in ("code", "status", "escalated", "category", "channel", "village", "grid",
                "caller", "text", "recording_url", "created_at", "accepted_by"):
        assert key in data
    assert data["recording_url"] == "https://r/1" and data["escalated"] is False


def test_volunteer_takes_then_closes_a_ticket(sample: Hotline) -> None:
    t = tickets.open_ticket(sample, RESIDENT, "medicine", "sms")
    taken = tickets.take(sample, t.code, VOLUNTEER)
    assert (taken.status, taken.accepted_by) == ("accepted", VOLUNTEER)
    assert [x.code for x in tickets.assigned_to(sample, VOLUNTEER)] == [t.code]
    done = tickets.close(sample, t.code, VOLUNTEER)
    assert done.status == "done" and done.closed_at is not None
    assert tickets.assigned_to(sample, VOLUNTEER) == []
    whats = [e["what"] for e in tickets.history(sample, t.code)]
    assert whats == ["opened", "accepted", "done"]


def test_the_second_taker_learns_who_has_it(sample: Hotline) -> None:
    t = tickets.open_ticket(sample, RESIDENT, "medicine", "sms")
    tickets.take(sample, t.code, VOLUNTEER)
    with pytest.raises(TicketError) as caught:
        tickets.take(sample, t.code, VOLUNTEER2)
    assert caught.value.reason == "accepted"
    assert caught.value.ticket is not None and caught.value.ticket.accepted_by == VOLUNTEER


def race(hl: Hotline, code: str, phone: str, barrier: threading.Barrier, won: list[str],
         lost: list[str]) -> None:
    barrier.wait()
    try:
        tickets.take(hl, code, phone)
        won.append(phone)
    except TicketError:
        lost.append(phone)


def test_two_takers_at_the_same_instant_exactly_one_wins(sample: Hotline) -> None:
    for _ in range(20):
        t = tickets.open_ticket(sample, RESIDENT, "food", "sms", notify=False)
        barrier = threading.Barrier(2)
        won: list[str] = []
        lost: list[str] = []

        threads = [threading.Thread(target=race, args=(sample, t.code, p, barrier, won, lost))
                   for p in (VOLUNTEER, VOLUNTEER2)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert len(won) == 1 and len(lost) == 1
        final = tickets.get(sample, t.code)
        assert final is not None and final.accepted_by == won[0]
        assert [e["what"] for e in tickets.history(sample, t.code)].count("accepted") == 1


def test_only_the_assignee_may_close_or_release(sample: Hotline) -> None:
    t = tickets.open_ticket(sample, RESIDENT, "food", "sms")
    tickets.take(sample, t.code, VOLUNTEER)
    for change in (tickets.close, tickets.release):
        with pytest.raises(TicketError, match="not_yours"):
            change(sample, t.code, VOLUNTEER2)


def test_a_leader_may_assign_and_close_anyones_ticket(sample: Hotline) -> None:
    t = tickets.open_ticket(sample, RESIDENT, "food", "sms")
    tickets.take(sample, t.code, VOLUNTEER)
    moved = tickets.assign(sample, t.code, VOLUNTEER2, by=LEADER)
    assert moved.accepted_by == VOLUNTEER2
    assert tickets.assigned_to(sample, VOLUNTEER) == []
    assert tickets.close(sample, t.code, LEADER, leader=True).status == "done"


def test_release_puts_the_ticket_back_to_waiting(sample: Hotline) -> None:
    t = tickets.open_ticket(sample, RESIDENT, "food", "sms")
    tickets.take(sample, t.code, VOLUNTEER)
    back = tickets.release(sample, t.code, VOLUNTEER)
    assert back.status == "new" and back.accepted_by == ""
    assert tickets.take(sample, t.code, VOLUNTEER2).accepted_by == VOLUNTEER2


def test_a_closed_ticket_cannot_be_taken(sample: Hotline) -> None:
    t = tickets.open_ticket(sample, RESIDENT, "food", "sms")
    tickets.cancel(sample, t.code, LEADER)
    with pytest.raises(TicketError, match="cancelled"):
        tickets.take(sample, t.code, VOLUNTEER)


def test_who_may_handle_a_ticket(sample: Hotline) -> None:
    from gateway import registry

    t = tickets.open_ticket(sample, RESIDENT, "food", "sms")

    def may(phone: str) -> bool:
        person = registry.person(sample.r, phone)
        assert person is not None
        return tickets.may_handle(sample, person, t)

    assert may(VOLUNTEER) and may(LEADER) and may(HEAD)
    assert may(OTHER_GRID_LEADER), "a leader of the village may handle any of its grids"
    assert not may("+8613800000012"), "a volunteer of another grid may not"
    assert not may(RESIDENT)


def test_listing_filters_by_status_and_village_newest_first(sample: Hotline) -> None:
    a = tickets.open_ticket(sample, RESIDENT, "food", "sms")
    b = tickets.open_ticket(sample, STRANGER, "food", "sms")
    c = tickets.open_ticket(sample, RESIDENT, "medicine", "sms")
    tickets.take(sample, c.code, VOLUNTEER)
    assert [t.code for t in tickets.list_tickets(sample)] == [c.code, b.code, a.code]
    assert [t.code for t in tickets.list_tickets(sample, status="new")] == [b.code, a.code]
    village = sample.r.hget("hl:villages", "联合村")
    assert village is not None
    assert [t.code for t in tickets.list_tickets(sample, village_id=village)] == [c.code, a.code]
    assert [t.code for t in tickets.list_tickets(sample, village_id=village,
                                                 status="accepted")] == [c.code]


def test_two_additions_at_the_same_instant_both_stay(sample: Hotline) -> None:
    t = tickets.open_ticket(sample, RESIDENT, "food", "sms", text="first", notify=False)
    barrier = threading.Barrier(4)

    def add(word: str) -> None:
        barrier.wait()
        tickets.add_text(sample, t.code, RESIDENT, word)

    threads = [threading.Thread(target=add, args=(w,)) for w in ("a", "b", "c", "d")]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    final = tickets.get(sample, t.code)
    assert final is not None
    assert sorted(final.text.split("\n")) == ["a", "b", "c", "d", "first"]
