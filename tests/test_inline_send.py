"""An offer job sends its own texts (one attempt each) and hands anything it cannot send now to a send job.

Each guarantee of the queued path must hold for the inline attempt too: nothing lost when
the worker dies mid-send, nothing sent twice, the pacing limit, the outage gate, opt-outs.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from pathlib import Path

import pytest
from rq.job import Job, JobStatus

from gateway import messages, pacing, tickets
from gateway.context import Hotline
from gateway.embedded import EmbeddedRedis
from gateway.jobs import job_alive, move_due_jobs
from gateway.settings import Settings
from gateway.store import KEYS
from tests.conftest import (
    DUTY,
    GRID_WORKER,
    HEAD,
    LEADER,
    RESIDENT,
    VOLUNTEER,
    VOLUNTEER2,
    Spawn,
    drain,
    twilio_settings,
)
from tests.fake_twilio import FROM_NUMBER, FakeTwilio, wait_until
from workers import sweeper
from workers.messages import Gate, current_job_of, enqueue_send

TEAM = [LEADER, GRID_WORKER, VOLUNTEER, VOLUNTEER2]



@pytest.fixture
def settings(redis_server: EmbeddedRedis, data_dir: Path, fake: FakeTwilio) -> Settings:
    return twilio_settings(redis_server.url, data_dir, fake, retry_for=60, sweep_after=3)


def offers(hl: Hotline, code: str) -> list[messages.Message]:
    """The ticket's offer records, in the order they were made."""
    ids = [mid for purpose, mid in hl.r.hgetall(KEYS.ticket_messages(code)).items()
           if purpose.startswith("offer:")]
    found = [messages.get(hl, mid) for mid in ids]
    return sorted((m for m in found if m is not None), key=lambda m: int(m.id[1:]))


def test_the_offer_job_sends_its_texts_itself_and_queues_no_send_job(sample: Hotline,
                                                                    fake: FakeTwilio) -> None:
    ticket = tickets.open_ticket(sample, RESIDENT, "medicine", "sms")
    drain(sample)
    assert fake.accepted_to() == TEAM
    sent = offers(sample, ticket.code)
    assert [(m.status, m.attempts) for m in sent] == [("sent", 1)] * 4
    assert {current_job_of(sample, m.id) for m in sent} == {f"offer-{ticket.code}"}
    ran = sample.queue.finished_job_registry.get_job_ids()
    assert f"offer-{ticket.code}" in ran and not [j for j in ran if j.startswith("send-")]
    # Everyone else who records a text still gets a send job of its own.
    notice = messages.queue_sms(sample, HEAD, "通知：明天接种", kind="notice")
    assert sample.queue.get_job_ids() == [f"send-{notice.id}"]


def test_a_worker_killed_during_an_inline_send_is_recovered_and_each_text_goes_once(
        sample: Hotline, fake: FakeTwilio, spawn: Spawn) -> None:
    fake.delay = 5.0  # Twilio accepts the first offer, then is slow to answer
    first = spawn(HOTLINE_SWEEP_AFTER="2")
    ticket = tickets.open_ticket(sample, RESIDENT, "medicine", "sms")
    wait_until(lambda: fake.accepted)
    cut = offers(sample, ticket.code)
    assert [(m.status, m.attempts) for m in cut] == [("sending", 1)] + [("queued", 0)] * 3
    # While the offer job lives, its texts are its own: a sweep leaves them alone.
    assert {current_job_of(sample, m.id) for m in cut} == {f"offer-{ticket.code}"}
    assert sweeper.sweep_once(sample, now=time.time() + 10).messages == 0
    os.killpg(first.pid, signal.SIGKILL)  # a power cut while the request is in flight
    first.wait()
    fake.delay = 0
    spawn(HOTLINE_SWEEP_AFTER="2")
    wait_until(lambda: all(m.provider_id for m in offers(sample, ticket.code)), timeout=20)
    done = offers(sample, ticket.code)
    assert sorted(fake.accepted_to()) == sorted(TEAM) and len(fake.sends()) == 4  # once each
    assert (done[0].attempts, done[0].provider_id) == (1, fake.accepted[0]["sid"])  # found, not resent
    assert any(r.method == "GET" for r in fake.received)
    assert tickets.offered_to(sample, ticket.code) == TEAM  # the re-run offer job added nobody
    # The text is written down before its job ends: wait for the job, which must end.
    wait_until(lambda: not sample.queue.started_job_registry.get_job_ids(), timeout=10)


def test_a_worker_killed_inside_a_batch_of_new_tickets_leaves_each_offer_sent_once(
        sample: Hotline, fake: FakeTwilio, spawn: Spawn) -> None:
    # Opened while no worker runs (a burst after an outage): handed over as one batch of five
    # and one ticket alone. Strangers' tickets are offered to the one duty officer each.
    codes = [tickets.open_ticket(sample, f"+861370000{i:04d}", "food", "sms").code
             for i in range(6)]
    fake.delay = 5.0  # Twilio accepts the first offer, then is slow to answer
    first = spawn(HOTLINE_SWEEP_AFTER="2")
    wait_until(lambda: fake.accepted)
    assert f"#{codes[0]}：" in fake.accepted[0]["body"]  # the batch's first offer is in flight
    os.killpg(first.pid, signal.SIGKILL)  # a power cut inside the batch
    first.wait()
    fake.delay = 0
    spawn(HOTLINE_SWEEP_AFTER="2")
    wait_until(lambda: all(m.provider_id for c in codes for m in offers(sample, c))
               and all(offers(sample, c) for c in codes), timeout=30)
    assert len(fake.sends()) == 6  # one text a ticket: the cut one found by lookup, not resent
    assert any(r.method == "GET" for r in fake.received)
    assert [sum(f"#{c}：" in m["body"] for m in fake.accepted) for c in codes] == [1] * 6
    for code in codes:
        assert tickets.offered_to(sample, code) == [DUTY]
        assert [m.to for m in offers(sample, code)] == [DUTY]
    # The text is written down before its job ends: wait for the job, which must end.
    wait_until(lambda: not sample.queue.started_job_registry.get_job_ids(), timeout=10)


def test_with_pacing_on_only_the_text_whose_turn_is_now_goes_inline(sample: Hotline,
                                                                    fake: FakeTwilio) -> None:
    sample.settings = sample.settings.with_overrides(sms_rate=1)
    ticket = tickets.open_ticket(sample, RESIDENT, "medicine", "sms")
    started = pacing.server_now(sample)
    drain(sample)
    finished = pacing.server_now(sample)
    assert fake.accepted_to() == [LEADER]
    later = offers(sample, ticket.code)[1:]
    jobs = [current_job_of(sample, m.id) for m in later]
    registry = sample.queue.scheduled_job_registry
    turns = [float(sample.rq.zscore(registry.key, job) or 0) for job in jobs]
    assert all(job.startswith("send-") for job in jobs)
    # Measured from the first text's claimed turn in Redis, not its arrival at the fake (which
    # lags the turn on a busy machine): each later text's turn is the later of its slot (one
    # interval apart, in order) and the moment the last send leaves the sender's window (at
    # one a second, one interval), scheduled within the offer job's run.
    gap = pacing.interval(1)
    assert pacing.window(1)[1] == pytest.approx(gap)
    last = float(sample.r.lindex(KEYS.rate(f"sms:{FROM_NUMBER}", "recent"), 0) or 0)
    assert started <= last <= finished
    slots = [Job.fetch(job, connection=sample.rq).args[1] for job in jobs]
    assert all(b >= a + gap - 1e-3 for a, b in itertools.pairwise(slots))
    for slot, turn in zip(slots, turns, strict=True):
        due = max(slot, last + gap)
        assert due - 1e-3 <= turn <= due + (finished - started)


def test_with_the_gate_closed_the_offers_are_parked_and_go_when_the_outage_ends(
        sample: Hotline, fake: FakeTwilio) -> None:
    probe = messages.queue_sms(sample, HEAD, "通知：明天接种", kind="notice", job="elsewhere")
    Gate(sample, "twilio").fail(probe)
    ticket = tickets.open_ticket(sample, RESIDENT, "medicine", "sms")
    drain(sample)
    parked = offers(sample, ticket.code)
    assert not fake.sends()
    assert sample.r.zrange(KEYS.held("twilio"), 0, -1) == [m.id for m in parked]
    assert [(m.status, m.attempts) for m in parked] == [("queued", 0)] * 4
    enqueue_send(sample, probe.id)  # the probe gets through: the outage ends
    drain(sample)
    assert fake.accepted_to() == [HEAD, *TEAM] and len(fake.sends()) == 5


def test_a_provider_failing_makes_the_first_offer_the_probe_of_a_send_job_not_a_failed_offer_job(
        sample: Hotline, fake: FakeTwilio) -> None:
    fake.stop_listening()  # connections refused
    ticket = tickets.open_ticket(sample, RESIDENT, "medicine", "sms")
    drain(sample)
    first, *rest = offers(sample, ticket.code)
    assert Job.fetch(f"offer-{ticket.code}", connection=sample.rq).get_status() == JobStatus.FINISHED
    assert (first.status, first.attempts, Gate(sample, "twilio").probe()) == ("queued", 1, first.id)
    retry = current_job_of(sample, first.id)
    assert retry.startswith("send-") and job_alive(sample, retry)
    assert retry in sample.queue.scheduled_job_registry.get_job_ids()  # after HOTLINE_RETRY_FIRST
    assert sample.r.zrange(KEYS.held("twilio"), 0, -1) == [m.id for m in rest]
    assert all(m.attempts == 0 for m in rest)  # parked, never tried
    fake.start_listening()
    move_due_jobs(sample, now=time.time() + sample.settings.retry_first + 1)  # not the escalation
    drain(sample)
    assert fake.accepted_to() == TEAM and len(fake.sends()) == 4


def test_an_opted_out_member_gets_no_offer_and_the_others_do(sample: Hotline,
                                                             fake: FakeTwilio) -> None:
    messages.set_opt_out(sample, VOLUNTEER, True)
    ticket = tickets.open_ticket(sample, RESIDENT, "medicine", "sms")
    drain(sample)
    assert fake.accepted_to() == [LEADER, GRID_WORKER, VOLUNTEER2]
    assert [m.status for m in offers(sample, ticket.code)] == ["sent", "sent", "optedout", "sent"]
