"""The sweeper: finds work that fell between the cracks and starts it again, within HOTLINE_SWEEP_AFTER.

RQ notices a job whose worker died (SIGKILL, power cut) only once the job's own timeout
and the worker's heartbeat have lapsed (minutes), and never retries a job that has used up
its retries. Each worker's ticker (workers.service) enqueues this sweep every third of
HOTLINE_SWEEP_AFTER. A sweep:

1. puts back on the queue, at the front, every job that was running on a hotline worker
   whose alive key has lapsed (a job that keeps killing its worker fails after three tries),
   and every job a worker took off the queue but died before starting (RQ's own cleanup
   of those waits for its maintenance, every ten minutes);
2. requeues failed jobs that are still worth doing (younger than HOTLINE_RETRY_FOR, and not
   sooner than HOTLINE_RETRY_MAX after their last failure); a message too old is given up
   and marked failed, so nothing fails silently;
3. keeps every sender's outage probing: a probe whose job is gone is restarted, or handed
   on; messages parked on an outage while another sender is up are routed again;
4. re-enqueues messages left queued or sending with no live job for HOTLINE_SWEEP_AFTER;
5. re-offers tickets still `new` after HOTLINE_SWEEP_AFTER.
Every step only enqueues jobs that are themselves safe to run twice.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from rq import SimpleWorker
from rq.exceptions import NoSuchJobError
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, StartedJobRegistry
from rq.utils import parse_composite_key

from gateway import clock, jobs, messages, pacing
from gateway.context import Hotline
from gateway.jobs import WORKER_PREFIX, job_alive, periods
from gateway.messages import Message
from gateway.outage import Gate, in_outage
from gateway.phones import mask
from gateway.store import KEYS
from workers.messages import PENDING, current_job_of, enqueue_send
from workers.runtime import hotline

log = logging.getLogger(__name__)

MAX_DEATHS = 3  # a job that kills its worker this often is failed, not run again


@dataclass
class Report:
    abandoned: int = 0
    retried: int = 0
    given_up: int = 0
    probes: int = 0
    messages: int = 0
    tickets: int = 0


def sweep() -> dict[str, int]:
    """The periodic job: one sweep; returns what it did (kept as the job's result)."""
    return asdict(sweep_once(hotline()))


def sweep_once(hl: Hotline, now: float | None = None) -> Report:
    now = clock.timestamp() if now is None else now
    report = Report()
    requeue_abandoned(hl, report)
    requeue_dropped(hl, now, report)
    retry_failed(hl, now, report)
    keep_gates_probing(hl, now, report)
    resend_stuck_messages(hl, now, report)
    reoffer_new_tickets(hl, now, report)
    if any(asdict(report).values()):
        log.info("sweep: %s", report)
    return report


def requeue_abandoned(hl: Hotline, report: Report) -> None:
    """Jobs running on a hotline worker that is no longer alive: back on the queue, first."""
    registry = StartedJobRegistry(queue=hl.queue)
    for raw in hl.rq.zrange(registry.key, 0, -1):
        composite = raw.decode() if isinstance(raw, bytes) else str(raw)
        job_id, execution_id = parse_composite_key(composite)
        try:
            worker = Execution.fetch(execution_id, job_id, connection=hl.rq).worker_name
        except ValueError:
            continue  # no record of who runs it: RQ's own cleanup will deal with it
        if not worker.startswith(WORKER_PREFIX) or hl.r.exists(KEYS.alive(worker)):
            continue
        try:
            job = Job.fetch(job_id, connection=hl.rq)
        except NoSuchJobError:
            hl.rq.zrem(registry.key, composite)
            continue
        if job.get_status() != JobStatus.STARTED:
            hl.rq.zrem(registry.key, composite)
            continue
        deaths = int(job.meta.get("deaths", 0)) + 1
        job.meta["deaths"] = deaths
        job.save_meta()  # type: ignore[no-untyped-call]  # rq leaves it unannotated
        if deaths > MAX_DEATHS:
            log.error("job %s: its worker died %d times running it; failing it", job_id, deaths)
            with hl.rq.pipeline() as pipe:
                pipe.multi()
                pipe.zrem(registry.key, composite)
                job.set_status(JobStatus.FAILED, pipeline=pipe)
                FailedJobRegistry(queue=hl.queue).add(
                    job, ttl=30 * 86400, pipeline=pipe,
                    exc_string=f"its worker died {deaths} times while running it")
                pipe.execute()
            continue
        log.warning("job %s: worker %s died while running it; running it again", job_id, worker)
        bury(hl, worker)
        with hl.rq.pipeline() as pipe:
            pipe.multi()  # one transaction: off the started registry and on the queue
            pipe.zrem(registry.key, composite)
            hl.queue.enqueue_job(job, pipeline=pipe, at_front=True)
            pipe.execute()
        report.abandoned += 1


def requeue_dropped(hl: Hotline, now: float, report: Report) -> None:
    """Jobs a worker moved off the queue (RQ's intermediate list) and died before starting:
    seen there, not started, for longer than a worker's alive TTL, they go back at the front.
    A worker that is only slow would start the job twice: every job is safe to run twice."""
    waiting = hl.queue.intermediate_queue
    started = StartedJobRegistry(queue=hl.queue)
    for job_id in waiting.get_job_ids():
        if job_id in started or waiting.set_first_seen(job_id):
            continue  # running, or seen for the first time (RQ's own mark, shared with its cleanup)
        first = waiting.get_first_seen(job_id)
        if first is None or now - first.timestamp() < periods(hl)[0]:
            continue
        try:
            job = Job.fetch(job_id, connection=hl.rq)
        except NoSuchJobError:
            waiting.remove(job_id)
            continue
        log.warning("job %s: its worker took it and died before starting it; queueing it again",
                    job_id)
        with hl.rq.pipeline() as pipe:
            pipe.multi()
            pipe.lrem(waiting.key, 1, job_id)
            pipe.delete(waiting.get_first_seen_key(job_id))
            hl.queue.enqueue_job(job, pipeline=pipe, at_front=True)
            pipe.execute()
        report.abandoned += 1


def bury(hl: Hotline, name: str) -> None:
    """Take a dead worker off RQ's list of workers (else it shows as busy for minutes)."""
    dead = SimpleWorker.find_by_key(f"rq:worker:{name}", connection=hl.rq)
    if dead is not None:
        dead.register_death()  # type: ignore[no-untyped-call]  # rq leaves it unannotated


def retry_failed(hl: Hotline, now: float, report: Report) -> None:
    """Failed jobs of ours still worth doing go again; messages too old are given up."""
    registry = FailedJobRegistry(queue=hl.queue)
    s = hl.settings
    for job_id in registry.get_job_ids(cleanup=False):
        try:
            job = Job.fetch(job_id, connection=hl.rq)
        except NoSuchJobError:
            registry.remove(job_id)
            continue
        name = job.func_name or ""
        if not name.startswith("workers.") or name == jobs.SWEEP:
            continue
        if job.ended_at and now - job.ended_at.timestamp() < s.retry_max:
            continue  # failed a moment ago: give it the longest retry gap first
        if name == jobs.SEND:
            message = messages.get(hl, str(job.args[0]))
            if message is None or message.status not in PENDING or message.provider_id:
                registry.remove(job_id)  # done another way since
                continue
            if current_job_of(hl, message.id) != job_id and job_alive(hl, current_job_of(hl, message.id)):
                registry.remove(job_id)
                continue
            if now - message.created_at > s.retry_for:
                give_up(hl, message, report)
                registry.remove(job_id)
                continue
            hl.r.hset(KEYS.message(message.id), "job", job_id)
        elif job.created_at and now - job.created_at.timestamp() > s.retry_for:
            continue  # too old to matter now; it stays failed for the operator to see
        log.warning("job %s failed every retry; trying it again", job_id)
        registry.requeue(job_id)
        report.retried += 1


def keep_gates_probing(hl: Hotline, now: float, report: Report) -> None:
    """Each sender's outage: a probe whose job is gone is restarted or handed on; messages
    parked on it while another sender is up are let go (routing takes them there)."""
    up = [s for s in hl.pool if not in_outage(hl, s)]
    for sender in hl.pool:
        gate = Gate(hl, sender.name)
        probe = gate.probe()
        if probe is None:
            continue
        if up:
            for mid, _ in gate.release():
                enqueue_send(hl, mid)
                report.messages += 1
        if probe == "":
            if hl.r.zcard(KEYS.held(sender.name)) == 0:
                continue  # the next message routed here probes it
            probe = _handed_probe(hl, gate)
            if probe is None:
                continue
        message = messages.get(hl, probe)
        pending = message is not None and message.status in PENDING and not message.provider_id
        if pending and job_alive(hl, current_job_of(hl, probe)):
            continue
        if message is not None and pending and now - message.created_at <= hl.settings.retry_for:
            enqueue_send(hl, probe)
            report.probes += 1
            continue
        if message is not None and pending:
            give_up(hl, message, report)
        # The probe is done with: the oldest held message that is still young enough takes over.
        successor = None
        for mid in hl.r.zrange(KEYS.held(sender.name), 0, -1):
            held = messages.get(hl, mid)
            if held is None or held.status not in PENDING or held.provider_id:
                hl.r.zrem(KEYS.held(sender.name), mid)
            elif now - held.created_at > hl.settings.retry_for:
                hl.r.zrem(KEYS.held(sender.name), mid)
                give_up(hl, held, report)
            else:
                successor = mid
                break
        if successor is None:
            gate.open()
            continue
        hl.r.zrem(KEYS.held(sender.name), successor)
        hl.r.hset(KEYS.gate(sender.name), "probe", successor)
        enqueue_send(hl, successor)
        report.probes += 1


def _handed_probe(hl: Hotline, gate: Gate) -> str | None:
    """Every sender is down and this one's probe went elsewhere: once its next probe is due,
    the oldest parked message takes the role (returned), so probing goes on."""
    if pacing.server_now(hl) < (gate.next_probe() or 0.0):
        return None
    oldest = hl.r.zrange(gate.held, 0, 0)
    if not oldest:
        return None
    hl.r.hset(gate.gate, "probe", oldest[0])
    hl.r.zrem(gate.held, oldest[0])
    return oldest[0]


def resend_stuck_messages(hl: Hotline, now: float, report: Report) -> None:
    """Messages queued or mid-send for HOTLINE_SWEEP_AFTER with no job that will send them."""
    s = hl.settings
    for status in PENDING:
        for mid in hl.r.zrangebyscore(KEYS.messages_by_status(status), "-inf", now - s.sweep_after):
            message = messages.get(hl, mid)
            if message is None or message.direction != "out" or message.provider_id:
                continue
            channel = message.channel
            if channel and (hl.r.zscore(KEYS.held(channel), mid) is not None
                            or Gate(hl, channel).probe() == mid):
                continue  # waiting out an outage (keep_gates_probing looks after the probe)
            if job_alive(hl, current_job_of(hl, mid)):
                continue
            if now - message.created_at > s.retry_for:
                give_up(hl, message, report)
                continue
            log.warning("sms %s to %s had no job; queueing it again", mid, mask(message.to))
            enqueue_send(hl, mid)
            report.messages += 1


def reoffer_new_tickets(hl: Hotline, now: float, report: Report) -> None:
    """Tickets nobody was offered yet, HOTLINE_SWEEP_AFTER after they opened."""
    for code in hl.r.zrangebyscore(KEYS.tickets_by_status("new"), "-inf",
                                   now - hl.settings.sweep_after):
        jobs.offer(hl, code, f"sweep-{int(now)}")
        report.tickets += 1


def give_up(hl: Hotline, message: Message, report: Report) -> None:
    """Stop trying a message after HOTLINE_RETRY_FOR: failed, with the reason on the record."""
    messages.update(hl, message.id, status="failed",
                    error=f"gave up after {hl.settings.retry_for} s: {message.error}".strip())
    log.error("sms %s to %s: gave up after %d s", message.id, mask(message.to),
              hl.settings.retry_for)
    if message.kind in messages.OFFERS and message.ticket:
        jobs.offer_next(hl, message.ticket, message.id)
    report.given_up += 1
