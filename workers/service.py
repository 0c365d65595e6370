"""Running the workers: a non-forking RQ worker plus a ticker thread that keeps timers, heartbeat and sweeps.

RQ's own scheduler is replaced by the ticker here for two reasons. Its lock outlives a
killed worker by a minute and is only re-tried every two minutes, so timers would stall
after a power cut; and it reads due times to the whole second, too coarse for pacing at
10 messages a second. The ticker hands new tickets' codes from the intake list to offer jobs
and moves due jobs from RQ's ScheduledJobRegistry (scored to
the millisecond by `schedule_at`) every tenth of a second under a lock that lapses within
seconds; it also refreshes this worker's `alive` key, which is how the sweeper tells a
worker that died mid-job from one still busy, and it enqueues the sweep every few seconds.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import redis
from rq import SimpleWorker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from gateway import pacing
from gateway.context import QUEUE, Hotline
from gateway.store import KEYS, connect
from workers import runtime

log = logging.getLogger(__name__)

WORKER_PREFIX = "hotline."  # names of workers that keep an alive key; the sweeper judges only these
TICK = 0.1  # seconds between two looks at the scheduled jobs
LIVE = (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.STARTED, JobStatus.DEFERRED)

_LEAD = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
end
return 0
"""


def periods(hl: Hotline) -> tuple[float, float]:
    """(alive TTL, sweep period): a third of HOTLINE_SWEEP_AFTER each, so a worker that died
    is noticed, and its job running again, within HOTLINE_SWEEP_AFTER seconds."""
    third = max(1.0, hl.settings.sweep_after / 3)
    return third, third


def worker_name() -> str:
    return f"{WORKER_PREFIX}{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}"


def job_alive(hl: Hotline, job_id: str) -> bool:
    """Whether the job will still run: queued, scheduled, running or waiting on another."""
    try:
        job = Job.fetch(job_id, connection=hl.rq)
    except NoSuchJobError:
        return False
    return job.get_status(refresh=False) in LIVE


def schedule_at(hl: Hotline, func: str, *args: Any, job_id: str, at: float,
                retry: bool = True) -> Job:
    """Enqueue `func` for time `at` (seconds, server clock), to the millisecond."""
    kwargs: dict[str, Any] = {"job_id": job_id, "failure_ttl": 30 * 86400}
    if retry:
        kwargs["retry"] = hl.retry()
    job: Job = hl.queue.enqueue_at(datetime.fromtimestamp(at, UTC), func, *args, **kwargs)
    # RQ scores by whole seconds (rounding down, so early); put back the exact time.
    hl.rq.zadd(hl.queue.scheduled_job_registry.key, {job.id: at}, xx=True)
    return job


def move_due_jobs(hl: Hotline, now: float | None = None, limit: int = 500) -> int:
    """Put scheduled jobs whose time has come on the queue, earliest first; returns how many."""
    registry = hl.queue.scheduled_job_registry
    now = pacing.server_now(hl) if now is None else now
    moved = 0
    for raw in hl.rq.zrangebyscore(registry.key, 0, now, start=0, num=limit):
        job_id = raw.decode() if isinstance(raw, bytes) else str(raw)
        try:
            job = Job.fetch(job_id, connection=hl.rq)
        except NoSuchJobError:
            hl.rq.zrem(registry.key, job_id)
            continue
        with hl.rq.pipeline() as pipe:
            pipe.multi()  # one transaction: on the queue and off the schedule
            hl.queue.enqueue_job(job, pipeline=pipe, at_front=job.should_enqueue_at_front())
            pipe.zrem(registry.key, job_id)
            pipe.execute()
        moved += 1
    return moved


HAND_OVER_BATCH = 5  # new tickets per offer job when many wait at once


def hand_over_new_tickets(hl: Hotline, limit: int = 200) -> int:
    """Turn codes on the intake list into offer jobs, oldest first; returns how many codes.

    Webhooks only store a new ticket and put its code on the list (one Redis round trip);
    the jobs and the list's trim are one MULTI, so a code is handed over once or not at all.
    One code makes one `offer_ticket` job; a burst is cut into `offer_new` jobs of a few
    codes each, shared out among the workers. Only the ticker that holds the lead runs this,
    so no two hand the same code over.
    """
    codes = [str(c) for c in reversed(hl.r.lrange(KEYS.intake, -limit, -1))]
    if not codes:
        return 0
    with hl.rq.pipeline() as pipe:
        pipe.multi()
        for at in range(0, len(codes), HAND_OVER_BATCH):
            batch = codes[at:at + HAND_OVER_BATCH]
            if len(batch) == 1:
                hl.enqueue("workers.tickets.offer_ticket", batch[0], job_id=f"offer-{batch[0]}",
                           pipeline=pipe)
            else:
                hl.enqueue("workers.tickets.offer_new", batch,
                           job_id=f"offer-{batch[0]}-to-{batch[-1]}", pipeline=pipe)
        pipe.ltrim(KEYS.intake, 0, -len(codes) - 1)
        pipe.execute()
    return len(codes)


def enqueue_sweep(hl: Hotline) -> None:
    """One sweep, ahead of any backlog; it expires unrun rather than pile up behind a busy worker."""
    _, every = periods(hl)
    hl.queue.enqueue("workers.sweeper.sweep", job_id=f"sweep-{int(time.time() * 10)}",
                     at_front=True, result_ttl=60, failure_ttl=86400, ttl=max(5, int(every * 3)))


class Ticker(threading.Thread):
    """This worker's heartbeat; and, on whichever worker holds the lead, timers and sweeps."""

    def __init__(self, hl: Hotline, name: str) -> None:
        super().__init__(name=f"ticker-{name}", daemon=True)
        self.hl = hl
        self.worker = name
        self.stopping = threading.Event()
        self.r = connect(hl.url)

    def run(self) -> None:
        alive_ttl, every = periods(self.hl)
        next_beat = next_sweep = 0.0
        while not self.stopping.is_set():
            try:
                now = time.monotonic()
                if now >= next_beat:
                    self.r.set(KEYS.alive(self.worker), str(os.getpid()), px=int(alive_ttl * 1000))
                    next_beat = now + alive_ttl / 4
                if self.r.eval(_LEAD, 1, KEYS.lock("scheduler"), self.worker,
                               int(alive_ttl * 1000)):
                    hand_over_new_tickets(self.hl)
                    move_due_jobs(self.hl)
                    if now >= next_sweep:
                        enqueue_sweep(self.hl)
                        next_sweep = now + every
            except (redis.RedisError, OSError) as exc:
                log.warning("ticker: Redis is away (%s); trying again", type(exc).__name__)
                self.stopping.wait(1.0)
            except Exception:  # a bug here must not silently stop timers: log and go on
                log.exception("ticker: unexpected error")
            self.stopping.wait(TICK)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)
        try:
            self.r.delete(KEYS.alive(self.worker))
            self.r.eval("if redis.call('GET', KEYS[1]) == ARGV[1] then "
                        "return redis.call('DEL', KEYS[1]) end return 0",
                        1, KEYS.lock("scheduler"), self.worker)
        except redis.RedisError:
            pass


def make_worker(hl: Hotline) -> SimpleWorker:
    # Job descriptions carry arguments, and some jobs take phone numbers: keep them out of logs.
    worker = SimpleWorker([QUEUE], connection=hl.rq, name=worker_name(), log_job_description=False)
    worker.log_result_lifespan = False  # one line less per job, every few seconds for the sweep
    return worker


def run_worker(hl: Hotline, *, burst: bool = False) -> bool:
    """One worker process: jobs one at a time, timers, heartbeat and sweeps beside them.

    `burst` drains what is due now: one sweep, then due timers and the queue until both are
    empty, and returns whether any job ran.
    """
    runtime.use(hl)
    if burst:
        from workers.sweeper import sweep_once

        sweep_once(hl)
        worked = False
        for _ in range(100):  # jobs may make due jobs (a paced send's next turn): a few rounds
            moved = hand_over_new_tickets(hl) + move_due_jobs(hl)
            did = make_worker(hl).work(burst=True, logging_level="INFO")
            worked = worked or did
            if not moved and not did:
                break
        return worked
    worker = make_worker(hl)
    ticker = Ticker(hl, worker.name)
    # The alive key exists before the first job starts, so no sweep can mistake us for dead.
    ticker.r.set(KEYS.alive(worker.name), str(os.getpid()), px=int(periods(hl)[0] * 1000))
    ticker.start()
    # Local SIM channels: a thread reads the modem's inbox/ (and the phone's) meanwhile.
    from gateway.channels.watch import start_watcher

    start_watcher(hl)
    try:
        return bool(worker.work(burst=False, logging_level="INFO"))
    finally:
        ticker.stop()
