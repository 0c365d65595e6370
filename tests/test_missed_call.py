"""The missed-call line: gammu-smsd hangs up and runs `hotline missed-call NUMBER`; a ring is a ticket."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from gateway import messages, redis_away, tickets
from gateway.channels.missed_call import NotANumber, missed_call
from gateway.context import Hotline
from tests.conftest import LANDLINE_RESIDENT, RESIDENT, VOLUNTEER, VOLUNTEER2, drain


def texts_to(hl: Hotline, number: str) -> list[messages.Message]:
    return [m for m in messages.list_messages(hl) if m.direction == "out" and m.to == number]


def test_a_ring_opens_a_callback_ticket_offered_to_the_team_and_texts_the_code(
        sample: Hotline) -> None:
    ticket, new = missed_call(sample, "139 0000 0001")  # as the modem reports it: no +86
    assert new and (ticket.caller, ticket.category, ticket.channel) == (RESIDENT, "callback",
                                                                       "missed_call")
    assert (ticket.village, ticket.grid) == ("联合村", "第一网格")
    drain(sample)
    [code_sms] = texts_to(sample, RESIDENT)
    assert f"#{ticket.code}" in code_sms.body and "回电" in code_sms.body
    for member in (VOLUNTEER, VOLUNTEER2):
        assert any(f"#{ticket.code}" in m.body and m.kind == "offer" for m in texts_to(sample, member))
    assert tickets.get(sample, ticket.code).status == "notified"  # type: ignore[union-attr]


def test_repeated_rings_make_no_duplicates_and_no_more_texts(sample: Hotline) -> None:
    first, _ = missed_call(sample, RESIDENT)
    again = [missed_call(sample, RESIDENT) for _ in range(3)]
    assert [(t.code, new) for t, new in again] == [(first.code, False)] * 3
    assert len(tickets.list_tickets(sample)) == 1 and len(texts_to(sample, RESIDENT)) == 1
    assert [e["what"] for e in tickets.history(sample, first.code)].count("rang") == 3


def test_rings_handled_at_the_same_moment_make_one_ticket(sample: Hotline) -> None:
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(missed_call(sample, RESIDENT)[0].code))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(tickets.list_tickets(sample)) == 1


def test_a_caller_with_an_open_ticket_gets_none_and_after_it_closes_a_new_one(sample: Hotline) -> None:
    texted = tickets.open_ticket(sample, RESIDENT, "medicine", "sms", text="降压药")
    ticket, new = missed_call(sample, RESIDENT)
    assert (ticket.code, new) == (texted.code, False)
    tickets.take(sample, texted.code, VOLUNTEER)
    tickets.close(sample, texted.code, VOLUNTEER)
    later, new = missed_call(sample, RESIDENT)
    assert new and later.code != texted.code


def test_a_landline_caller_gets_a_ticket_but_no_text(sample: Hotline) -> None:
    ticket, new = missed_call(sample, "0482-8261234")
    assert new and ticket.caller == LANDLINE_RESIDENT
    drain(sample)
    assert texts_to(sample, LANDLINE_RESIDENT) == []


def test_a_withheld_number_is_refused_and_changes_nothing(sample: Hotline) -> None:
    with pytest.raises(NotANumber):
        missed_call(sample, "unknown")
    assert tickets.list_tickets(sample) == []


def test_the_command_gammu_smsd_runs(sample: Hotline, data_dir: Path) -> None:
    env = {**os.environ, "REDIS_URL": sample.url, "HOTLINE_DATA_DIR": str(data_dir)}

    def ring(number: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gateway.cli", "missed-call", number],
                              env=env, text=True, capture_output=True, timeout=60)

    first = ring("+8613900000001")
    assert first.returncode == 0, first.stderr
    code = first.stdout.strip()
    assert code.isdigit() and tickets.get(sample, code) is not None
    again = ring("13900000001")
    assert (again.returncode, again.stdout.strip()) == (0, f"{code} (already open)")
    withheld = ring("")
    assert withheld.returncode == 2 and "not a phone number" in withheld.stderr


def test_a_ring_while_redis_is_away_is_kept_and_handled_when_it_returns(
        sample: Hotline, data_dir: Path) -> None:
    env = {**os.environ, "REDIS_URL": f"unix://{data_dir}/no-redis.sock",
           "HOTLINE_DATA_DIR": str(data_dir)}
    done = subprocess.run([sys.executable, "-m", "gateway.cli", "missed-call", "13900000001"],
                          env=env, text=True, capture_output=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "kept for later (redis is away)")
    assert tickets.list_tickets(sample) == []
    assert redis_away.replay(sample) == 1 and redis_away.replay(sample) == 0
    [ticket] = tickets.list_tickets(sample)
    assert (ticket.caller, ticket.channel) == (RESIDENT, "missed_call")
