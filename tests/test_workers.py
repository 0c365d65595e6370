"""The notification workers against a fake Twilio over HTTP: offers, escalation, reminders, crashes, outages.

The tests named "..._real_worker_..." run `hotline worker` processes, as production does,
with every delay a setting of a second or two.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway import messages, tickets
from gateway.cli import cli
from gateway.context import Hotline
from gateway.embedded import EmbeddedRedis
from gateway.jobs import hand_over_new_tickets, move_due_jobs
from gateway.registry import Person
from gateway.registry_file import store_people
from gateway.settings import Settings
from gateway.store import KEYS
from tests.conftest import (
    DUTY,
    GRID_WORKER,
    HEAD,
    LEADER,
    RESIDENT,
    STRANGER,
    VOLUNTEER,
    VOLUNTEER2,
    Spawn,
    drain,
    twilio_settings,
)
from tests.fake_twilio import (
    FakeTwilio,
    wait_until,
)
from workers import sweeper
from workers import tickets as ticket_jobs
from workers.messages import Gate
from workers.service import make_worker

TEAM = [LEADER, GRID_WORKER, VOLUNTEER, VOLUNTEER2]
NEWBIE = "+8613800000005"



@pytest.fixture
def settings(redis_server: EmbeddedRedis, data_dir: Path, fake: FakeTwilio) -> Settings:
    return twilio_settings(redis_server.url, data_dir, fake, retry_for=60, sweep_after=3)


def record(hl: Hotline, mid: str) -> messages.Message:
    found = messages.get(hl, mid)
    assert found is not None
    return found


def offer_ids(hl: Hotline, code: str) -> dict[str, str]:
    """Recipient -> message id of the ticket's offers."""
    return {purpose.rsplit(":", 1)[1]: mid
            for purpose, mid in hl.r.hgetall(KEYS.ticket_messages(code)).items()
            if purpose.startswith("offer:")}


# --- offers --------------------------------------------------------------------------------


def test_a_new_ticket_is_offered_to_its_grid_team_in_registry_order(sample: Hotline,
                                                                    fake: FakeTwilio) -> None:
    ticket = tickets.open_ticket(sample, RESIDENT, "medicine", "sms")
    drain(sample)
    assert fake.accepted_to() == TEAM
    assert all(f"#{ticket.code}" in m["body"] for m in fake.accepted)
    after = tickets.get(sample, ticket.code)
    assert after is not None
    assert (after.status, tickets.offered_to(sample, ticket.code)) == ("notified", TEAM)


def test_an_offer_job_run_again_sends_nobody_a_second_text(sample: Hotline,
                                                           fake: FakeTwilio) -> None:
    ticket = tickets.open_ticket(sample, RESIDENT, "food", "sms")
    drain(sample)
    ticket_jobs.offer_ticket(ticket.code)
    ticket_jobs.offer_ticket(ticket.code, 0, 0)
    drain(sample)
    assert fake.accepted_to() == TEAM


def test_a_ticket_from_an_unknown_caller_goes_to_everyone_on_a_duty_list(
        sample: Hotline, fake: FakeTwilio) -> None:
    ticket = tickets.open_ticket(sample, STRANGER, "doctor", "voice")
    drain(sample)
    assert fake.accepted_to() == [DUTY]
    assert ticket.is_triage
    assert not sample.queue.scheduled_job_registry.get_job_ids()  # nowhere further to go


def test_a_burst_of_new_tickets_is_offered_by_a_few_jobs_and_a_failing_offer_goes_alone(
        sample: Hotline, fake: FakeTwilio, monkeypatch: pytest.MonkeyPatch) -> None:
    opened = [tickets.open_ticket(sample, f"+861370000{i:04d}", "food", "sms").code
              for i in range(12)]
    assert hand_over_new_tickets(sample) == 12
    assert sample.r.llen(KEYS.intake) == 0
    assert sample.queue.job_ids == [f"offer-{opened[0]}-to-{opened[4]}",
                                    f"offer-{opened[5]}-to-{opened[9]}",
                                    f"offer-{opened[10]}-to-{opened[11]}"]
    real, failed = ticket_jobs._offer, []

    def once_broken(hl: Hotline, code: str, *args: object, **kwargs: object) -> str:
        if code == opened[2] and not failed:
            failed.append(code)
            raise ConnectionError("Redis blinked")
        return real(hl, code, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ticket_jobs, "_offer", once_broken)
    drain(sample)
    assert failed == [opened[2]]
    bodies = [m["body"] for m in fake.accepted]
    assert fake.accepted_to() == [DUTY] * 12  # strangers' tickets: triage
    assert [sum(f"#{code}：" in b for b in bodies) for code in opened] == [1] * 12
    assert {tickets.get(sample, c).status for c in opened} == {"notified"}  # type: ignore[union-attr]


def test_a_taken_ticket_is_not_escalated(sample: Hotline, fake: FakeTwilio) -> None:
    ticket = tickets.open_ticket(sample, RESIDENT, "medicine", "sms")
    drain(sample)
    tickets.take(sample, ticket.code, VOLUNTEER)
    assert ticket_jobs.offer_ticket(ticket.code, 1, 0) == "nothing to do"
    drain(sample)
    assert fake.accepted_to()[:4] == TEAM
    # After them only the take's follow-ups (the resident, the others offered): no escalation.
    assert all(taken_note(m["body"], ticket.code) for m in fake.accepted[4:])


def test_an_escalation_timer_from_before_a_release_does_nothing(sample: Hotline,
                                                                fake: FakeTwilio) -> None:
    ticket = tickets.open_ticket(sample, RESIDENT, "medicine", "sms")
    drain(sample)
    tickets.take(sample, ticket.code, VOLUNTEER)
    tickets.release(sample, ticket.code, VOLUNTEER)
    drain(sample)  # the new round: the team is offered the ticket again
    assert fake.accepted_to() == TEAM + TEAM
    assert ticket_jobs.offer_ticket(ticket.code, 1, 0) == "stale"
    assert f"escalate-{ticket.code}-1-1" in sample.queue.scheduled_job_registry.get_job_ids()


def test_a_doctor_ticket_escalates_after_a_third_of_the_time(sample: Hotline,
                                                             fake: FakeTwilio) -> None:
    sample.settings = sample.settings.with_overrides(escalate_after=900)
    medicine = tickets.open_ticket(sample, RESIDENT, "medicine", "sms")
    doctor = tickets.open_ticket(sample, RESIDENT, "doctor", "sms")
    drain(sample)
    registry = sample.queue.scheduled_job_registry
    due = {code: registry.get_scheduled_time(f"escalate-{code}-0-1").timestamp() - t.created_at
           for code, t in ((medicine.code, medicine), (doctor.code, doctor))}
    assert 895 < due[medicine.code] < 905
    assert 295 < due[doctor.code] < 305


# --- permanent failures and bounces ---------------------------------------------------------


def test_numbers_twilio_refuses_are_recorded_and_the_heads_are_offered_at_once(
        sample: Hotline, fake: FakeTwilio) -> None:
    for number in TEAM:
        fake.fail_for(number, 21211)
    ticket = tickets.open_ticket(sample, RESIDENT, "medicine", "sms")
    drain(sample)
    assert fake.accepted_to() == [HEAD]  # no waiting out the timer: nobody could take it
    for number, mid in offer_ids(sample, ticket.code).items():
        if number in TEAM:
            failed = record(sample, mid)
            assert failed.status == "failed" and failed.error.startswith("21211 ")
    after = tickets.get(sample, ticket.code)
    assert after is not None and (after.escalated, after.escalation_level) == (True, 1)
    assert "急" in fake.accepted[0]["body"]


def test_an_offer_refused_for_good_goes_to_the_next_member_not_yet_offered(
        sample: Hotline, fake: FakeTwilio) -> None:
    ticket = tickets.open_ticket(sample, RESIDENT, "medicine", "sms", notify=False)
    ticket_jobs.offer_ticket(ticket.code)  # the four offers are queued, not yet sent
    store_people(sample.r, [Person(phone=NEWBIE, name="孙丽", role="volunteer", village="联合村",
                                   grid="第一网格", town="归流河镇")])
    fake.fail_for(VOLUNTEER2, 21610)
    drain(sample)
    assert fake.accepted_to() == [LEADER, GRID_WORKER, VOLUNTEER, NEWBIE]
    assert NEWBIE in tickets.offered_to(sample, ticket.code)


# --- reminders ------------------------------------------------------------------------------


def test_whoever_took_a_ticket_is_reminded_unless_it_moved_on(sample: Hotline,
                                                              fake: FakeTwilio) -> None:
    ticket = tickets.open_ticket(sample, RESIDENT, "medicine", "sms")
    drain(sample)
    taken = tickets.take(sample, ticket.code, VOLUNTEER)
    assert taken.accepted_at is not None
    stamp = sample.r.hget(KEYS.ticket(ticket.code), "accepted_at")
    job_id = f"remind-{ticket.code}-{int(float(stamp) * 1000)}"
    assert job_id in sample.queue.scheduled_job_registry.get_job_ids()
    assert ticket_jobs.remind_assignee(ticket.code, stamp) == "reminded"
    assert ticket_jobs.remind_assignee(ticket.code, stamp) == "nothing to do"  # once only
    tickets.assign(sample, ticket.code, VOLUNTEER2, LEADER)
    assert ticket_jobs.remind_assignee(ticket.code, stamp) == "nothing to do"  # not theirs now
    drain(sample)
    # Among the texts that follow the take and the assignment, one reminder, to the first taker.
    reminders = [m for m in fake.accepted if m["body"].startswith("提醒：")]
    assert [m["to"] for m in reminders] == [VOLUNTEER]
    assert f"完成 {ticket.code}" in reminders[0]["body"]


def taken_note(body: str, code: str) -> bool:
    """A text that follows a take: to the resident (who is coming) or to another offered."""
    return body.startswith((f"您的求助#{code}已有人接", f"求助#{code}已由"))


# --- the sweeper ----------------------------------------------------------------------------


def test_the_sweeper_queues_a_text_whose_job_was_lost(hl: Hotline, fake: FakeTwilio) -> None:
    message = messages.queue_sms(hl, VOLUNTEER, "通知：明天接种", kind="notice")
    hl.queue.empty()  # the job is gone, as if Redis had lost it before a worker took it
    assert sweeper.sweep_once(hl).messages == 0  # not yet: younger than HOTLINE_SWEEP_AFTER
    report = sweeper.sweep_once(hl, now=time.time() + 4)
    assert report.messages == 1
    drain(hl)
    assert (record(hl, message.id).status, fake.accepted_to()) == ("sent", [VOLUNTEER])


def test_the_sweeper_gives_up_a_text_older_than_retry_for_and_says_why(
        hl: Hotline, fake: FakeTwilio) -> None:
    message = messages.queue_sms(hl, VOLUNTEER, "通知：明天接种", kind="notice")
    hl.queue.empty()
    report = sweeper.sweep_once(hl, now=time.time() + 61)
    assert report.given_up == 1
    gone = record(hl, message.id)
    assert gone.status == "failed" and gone.error.startswith("gave up after 60 s")
    assert fake.sends() == []


def test_the_sweeper_requeues_a_failed_job_still_worth_doing(hl: Hotline, fake: FakeTwilio) -> None:
    fake.stop_listening()
    message = messages.queue_sms(hl, VOLUNTEER, "通知：明天接种", kind="notice")
    drain(hl)
    job = hl.queue.fetch_job(f"send-{message.id}")
    assert job is not None
    job.retries_left = 0  # as if every retry had been used up
    job.save()
    hl.queue.scheduled_job_registry.remove(job)
    hl.queue.failed_job_registry.add(job, exc_string="retries exhausted")
    fake.start_listening()
    assert sweeper.sweep_once(hl, now=time.time() + 3).retried == 1
    drain(hl)
    assert (record(hl, message.id).status, fake.accepted_to()) == ("sent", [VOLUNTEER])


def test_a_text_whose_worker_died_between_taking_and_starting_its_job_goes_once(
        hl: Hotline, fake: FakeTwilio) -> None:
    message = messages.queue_sms(hl, VOLUNTEER, "通知：明天接种", kind="notice")
    queue = hl.queue
    hl.rq.lmove(queue.key, queue.intermediate_queue_key)  # a worker's BLMOVE; then SIGKILL
    assert queue.count == 0
    assert sweeper.sweep_once(hl).abandoned == 0  # seen once: its worker may be starting it
    assert sweeper.sweep_once(hl, now=time.time() + 2).abandoned == 1  # past the alive TTL
    assert hl.rq.llen(queue.intermediate_queue_key) == 0 and queue.count == 1
    drain(hl)
    assert (record(hl, message.id).status, fake.accepted_to()) == ("sent", [VOLUNTEER])


def test_the_sweeper_offers_a_ticket_left_new(sample: Hotline, fake: FakeTwilio) -> None:
    ticket = tickets.open_ticket(sample, RESIDENT, "medicine", "sms", notify=False)
    assert sweeper.sweep_once(sample, now=time.time() + 4).tickets == 1
    drain(sample)
    assert fake.accepted_to() == TEAM
    assert sweeper.sweep_once(sample, now=time.time() + 4).tickets == 0
    assert tickets.offered_to(sample, ticket.code) == TEAM


def test_hotline_messages_list_accounts_for_every_text(sample: Hotline, fake: FakeTwilio,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    fake.fail_for(VOLUNTEER2, 21614)
    tickets.open_ticket(sample, RESIDENT, "medicine", "sms")
    drain(sample)
    monkeypatch.setenv("REDIS_URL", sample.url)
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(sample.settings.data_dir))
    from gateway.cli import common

    common.settings.cache_clear()
    common.hotline.cache_clear()
    try:
        as_json = CliRunner().invoke(cli, ["messages", "list", "--json"])
        failed = CliRunner().invoke(cli, ["messages", "list", "--status", "failed"])
        text = CliRunner().invoke(cli, ["messages", "list"])
    finally:
        common.settings.cache_clear()
        common.hotline.cache_clear()
    import json

    rows = json.loads(as_json.output)
    assert len(fake.sends()) == len(rows) == 4
    by_to = {row["to"]: row for row in rows}
    assert {"id", "to", "body", "channel", "attempts", "provider_id", "status",
            "error"} <= set(rows[0])
    bounced = by_to[VOLUNTEER2]
    assert (bounced["status"], bounced["attempts"], bounced["provider_id"]) == ("failed", 1, "")
    assert by_to[VOLUNTEER2]["error"].startswith("21614")
    assert {m["sid"] for m in fake.accepted} == {r["provider_id"] for r in rows if r["provider_id"]}
    assert "21614" in failed.output and failed.output.count(" out ") == 1
    assert text.output.strip().endswith("4 messages: 1 failed, 3 sent")


# --- real worker processes ------------------------------------------------------------------


def test_the_whole_chain_team_then_head_then_duty_with_a_real_worker(
        sample: Hotline, fake: FakeTwilio, spawn: Spawn) -> None:
    spawn(HOTLINE_ESCALATE_AFTER="1")
    ticket = tickets.open_ticket(sample, RESIDENT, "medicine", "sms")
    wait_until(lambda: len(fake.accepted) >= 6, timeout=20)
    assert fake.accepted_to() == [*TEAM, HEAD, DUTY]
    # Each level hears a timer's length after the one before was offered: measured from the
    # ticket's own history, since the first text reaches Twilio some time after the offer is
    # recorded and its timer set (pacing, a busy machine), and no later than its text arrives.
    steps = [e["at"] for e in tickets.history(sample, ticket.code)
             if e["what"] in ("offered", "escalated")]
    assert len(steps) == 3
    assert steps[1] - steps[0] >= 0.95 and steps[2] - steps[1] >= 0.95
    times = fake.send_times()
    assert times[4] >= steps[1] and times[5] >= steps[2]
    after = tickets.get(sample, ticket.code)
    assert after is not None
    assert (after.escalated, after.escalation_level, after.status) == (True, 2, "notified")
    wait_until(lambda: all(m.status == "sent" for m in messages.list_messages(sample)))
    tickets.take(sample, ticket.code, DUTY)
    wait_until(lambda: any(m["to"] == RESIDENT for m in fake.accepted))  # the take's follow-up
    time.sleep(0.3)
    assert all(taken_note(m["body"], ticket.code) for m in fake.accepted[6:])  # no more offers


def test_a_real_worker_killed_mid_request_is_noticed_and_the_text_goes_once(
        hl: Hotline, fake: FakeTwilio, spawn: Spawn) -> None:
    fake.delay = 5.0  # Twilio accepts the text, then is slow to answer
    first = spawn(HOTLINE_SWEEP_AFTER="2")
    message = messages.queue_sms(hl, VOLUNTEER, "求助#1042：联合村第一网格送药", kind="offer")
    wait_until(lambda: fake.accepted)
    os.killpg(first.pid, signal.SIGKILL)  # a power cut while the request is in flight
    first.wait()
    cut = record(hl, message.id)
    assert (cut.status, cut.attempts, cut.provider_id) == ("sending", 1, "")
    fake.delay = 0
    spawn(HOTLINE_SWEEP_AFTER="2")
    wait_until(lambda: record(hl, message.id).provider_id, timeout=15)
    sent = record(hl, message.id)
    assert (sent.status, sent.attempts, sent.provider_id) == ("sent", 1, fake.accepted[0]["sid"])
    assert len(fake.sends()) == 1  # the lookup found it: no second copy
    assert any(r.method == "GET" for r in fake.received)
    # The text is written down before its job ends: wait for the job, which must end.
    wait_until(lambda: not hl.queue.started_job_registry.get_job_ids(), timeout=10)


def test_an_outage_then_recovery_delivers_every_text_once_oldest_first_with_a_real_worker(
        hl: Hotline, fake: FakeTwilio, spawn: Spawn) -> None:
    fake.stop_listening()  # connections refused
    spawn()
    sent = [messages.queue_sms(hl, number, f"通知{i}：明天上午接种", kind="notice")
            for i, number in enumerate([*TEAM, HEAD, DUTY])]
    gate = Gate(hl, "twilio")
    wait_until(lambda: record(hl, sent[0].id).attempts >= 2, timeout=15)  # the probe retries
    assert sent[0].id == gate.probe()
    assert hl.r.zrange(KEYS.held("twilio"), 0, -1) == [m.id for m in sent[1:]]
    assert all(record(hl, m.id).attempts == 0 for m in sent[1:])  # parked, never tried
    fake.start_listening()
    wait_until(lambda: all(record(hl, m.id).status == "sent" for m in sent), timeout=20)
    assert [m["body"] for m in fake.accepted] == [m.body for m in sent]  # once each, in order
    assert len(sent) == len(fake.sends())
    assert gate.probe() is None


def test_a_burst_of_scheduled_work_is_moved_to_the_queue_in_time_order(hl: Hotline) -> None:
    from gateway.jobs import schedule_at

    now = time.time()
    for i, at in enumerate((now - 1, now - 3, now - 2, now + 60)):
        schedule_at(hl, "workers.sweeper.sweep", job_id=f"t{i}", at=at, retry=False)
    assert move_due_jobs(hl, now=now) == 3
    assert hl.queue.get_job_ids() == ["t1", "t2", "t0"]
    assert hl.queue.scheduled_job_registry.get_job_ids() == ["t3"]



def test_ending_a_worker_does_not_wait_for_its_sleeping_command_listener(hl: Hotline) -> None:
    # RQ's worker hears commands (stop a job, shut down) on a thread that sleeps up to a minute
    # between reads; ending the worker must not wait for that sleep. redis-py 8.2.0's stop()
    # began to wait for it, and RQ 3.0 then stood still for up to 60 s at the end of every
    # burst and every shutdown (pyproject keeps redis-py below 8.2 for it).
    worker = make_worker(hl)
    worker.subscribe()
    wait_until(lambda: worker.pubsub.subscribed, timeout=10)
    listener = worker.pubsub_thread
    worker.pubsub.unsubscribe()  # the listener reads the reply, then sleeps: the race, made sure

    def asleep() -> bool:
        frame = sys._current_frames().get(listener.ident or 0)
        return frame is not None and frame.f_code.co_name == "wait"

    wait_until(lambda: not worker.pubsub.subscribed and asleep(), timeout=10)
    listener.stop()  # redis-py 8.2.0 waits here until the listener's sleep is over
    assert listener.is_alive(), "stopping the listener waited for its sleep to end"
