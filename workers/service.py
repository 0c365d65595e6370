"""Running the workers: a non-forking RQ worker plus a ticker thread that keeps timers, heartbeat and sweeps.

RQ's own scheduler is replaced by the ticker here for two reasons. Its lock outlives a
killed worker by a minute and is only re-tried every two minutes, so timers would stall
after a power cut; and it reads due times to the whole second, too coarse for pacing at
10 messages a second. The ticker hands new tickets' codes from the intake list to offer jobs
and moves due jobs from RQ's ScheduledJobRegistry (scored to
the millisecond by `gateway.jobs.schedule_at`) every tenth of a second under a lock that lapses within
seconds; it also refreshes this worker's `alive` key, which is how the sweeper tells a
worker that died mid-job from one still busy, and it enqueues the sweep every few seconds.

This module is the runner only: nothing but the CLI imports it. The queue helpers the jobs
share (ids, scheduling, whether a job lives) are in gateway.jobs.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid

import redis
from rq import SimpleWorker

from gateway import jobs
from gateway.context import QUEUE, Hotline
from gateway.jobs import WORKER_PREFIX, hand_over_new_tickets, move_due_jobs, periods
from gateway.lua import Script
from gateway.store import KEYS, connect
from workers import runtime

log = logging.getLogger(__name__)

# Seconds between two looks at the scheduled jobs: a paced send's turn comes back within this,
# and a send waits in the worker no longer than workers.messages.HOLD, so keep it below that
# (else each turn comes back late and is put off again, and the lateness adds up).
TICK = 0.025

_LEAD = Script(__name__, "lead")
_RESIGN = Script(__name__, "resign")


def worker_name() -> str:
    return f"{WORKER_PREFIX}{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}"


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
                if _LEAD(self.r, lead=KEYS.lock("scheduler"), holder=self.worker,
                         ttl_ms=int(alive_ttl * 1000)):
                    hand_over_new_tickets(self.hl)
                    move_due_jobs(self.hl)
                    if now >= next_sweep:
                        jobs.sweep(self.hl, every)
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
            _RESIGN(self.r, lead=KEYS.lock("scheduler"), holder=self.worker)
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
