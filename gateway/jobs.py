"""Every RQ job the hotline queues: its function, its id and its delay, in one place.

Webhooks and the board queue jobs by dotted path (the web process never imports worker
code), and workers queue each other's; all of them do it through the functions below, so a
job's id (which is what makes a repeat a no-op) is spelled once. Job ids:

- ``send-<message>`` a message's first send job, ``send-<message>-<n>`` its n-th re-enqueue
  (its pacing turn, a retry after an outage); the record's ``job`` field names the live one.
- ``offer-<code>`` a new ticket handed over by the ticker; ``offer-<first>-to-<last>`` a burst
  of them in one job; ``offer-<code>-<why>`` a later offer of the same ticket (handed back,
  re-offered by the sweeper, split off a failed batch); ``escalate-<code>-<round>-<level>``
  the escalation timer of one round, HOTLINE_ESCALATE_AFTER after its offers.
- ``next-<code>-<message>`` the next person, after an offer text could not be delivered.
- ``remind-<code>-<ms>`` the taker's reminder, HOTLINE_REMIND_AFTER after the take at <ms>.
- ``taken-<code>-<ms>``, ``done-<code>``, ``added-<code>-<lines>`` the follow-up texts of a
  take (or assignment), a close and a resident's addition to a taken ticket.
- ``notice-<id>[-<audience>]`` a notice's fan-out; ``sweep-<tenths>`` one sweep.
- ``keep-<sha1 of the recording's URL>`` a prompt recorded by phone, fetched and stored.

It is a leaf: it imports no worker module, and the worker modules (messages, tickets,
sweeper) take their queue helpers from here, not from the runner (workers.service).
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime
from typing import Any

from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from gateway import pacing
from gateway.context import Hotline
from gateway.store import KEYS

# The job functions, by dotted path.
SEND = "workers.messages.send_message"
OFFER = "workers.tickets.offer_ticket"
OFFER_BATCH = "workers.tickets.offer_new"
OFFER_NEXT = "workers.tickets.offer_next"
REMIND = "workers.tickets.remind_assignee"
TAKEN = "workers.followups.taken"
DONE = "workers.followups.done"
ADDED = "workers.followups.added"
NOTICE = "workers.notices.send_notice"
SWEEP = "workers.sweeper.sweep"
KEEP_TAKE = "workers.prompts.keep_take"

WORKER_PREFIX = "hotline."  # names of workers that keep an alive key; the sweeper judges only these
LIVE = (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.STARTED, JobStatus.DEFERRED)
HAND_OVER_BATCH = 5  # new tickets per offer job when many wait at once


def periods(hl: Hotline) -> tuple[float, float]:
    """(alive TTL, sweep period): a third of HOTLINE_SWEEP_AFTER each, so a worker that died
    is noticed, and its job running again, within HOTLINE_SWEEP_AFTER seconds."""
    third = max(1.0, hl.settings.sweep_after / 3)
    return third, third


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
    """Put scheduled jobs whose time has come at the front of the queue, earliest first (a
    send's pacing turn, a retry, an escalation: each has waited its time already, and would
    come late behind a notice's thousands of new sends); returns how many."""
    registry = hl.queue.scheduled_job_registry
    now = pacing.server_now(hl) if now is None else now
    moved = 0
    due = hl.rq.zrangebyscore(registry.key, 0, now, start=0, num=limit)
    for raw in reversed(due):  # each goes in front of the one before: the earliest ends first
        job_id = raw.decode() if isinstance(raw, bytes) else str(raw)
        try:
            job = Job.fetch(job_id, connection=hl.rq)
        except NoSuchJobError:
            hl.rq.zrem(registry.key, job_id)
            continue
        with hl.rq.pipeline() as pipe:
            pipe.multi()  # one transaction: on the queue and off the schedule
            hl.queue.enqueue_job(job, pipeline=pipe, at_front=True)
            pipe.zrem(registry.key, job_id)
            pipe.execute()
        moved += 1
    return moved


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
                offer(hl, batch[0], pipeline=pipe)
            else:
                hl.enqueue(OFFER_BATCH, batch, job_id=f"offer-{batch[0]}-to-{batch[-1]}",
                           pipeline=pipe)
        pipe.ltrim(KEYS.intake, 0, -len(codes) - 1)
        pipe.execute()
    return len(codes)


# --- messages ------------------------------------------------------------------------------

def send(hl: Hotline, mid: str, *, delay: float | None = None) -> None:
    """A new message's first send job."""
    hl.enqueue(SEND, mid, job_id=f"send-{mid}", delay=delay)


def send_again_id(mid: str, n: int) -> str:
    return f"send-{mid}-{n}"


def send_again(hl: Hotline, mid: str, n: int, slot: float | None = None, *,
               at: float | None = None) -> None:
    """The message's n-th further send job (now, or at `at`)."""
    job_id = send_again_id(mid, n)
    if at is not None:
        schedule_at(hl, SEND, mid, slot, job_id=job_id, at=at)
    else:
        hl.enqueue(SEND, mid, slot, job_id=job_id)


def first_send_id(mid: str) -> str:
    """The id a message's send job has when its record names none."""
    return f"send-{mid}"


# --- tickets -------------------------------------------------------------------------------

def offer(hl: Hotline, code: str, why: str = "", pipeline: Any = None) -> None:
    """Offer the ticket (its current level); `why` tells a later offer from the first."""
    hl.enqueue(OFFER, code, job_id=f"offer-{code}-{why}" if why else f"offer-{code}",
               pipeline=pipeline)


def escalate(hl: Hotline, code: str, level: int, round_: int, after: float, now: float) -> None:
    """The round's timer: offer `level` `after` seconds from `now`, unless already set."""
    job_id = f"escalate-{code}-{round_}-{level}"
    if not job_alive(hl, job_id):
        schedule_at(hl, OFFER, code, level, round_, job_id=job_id, at=now + after)


def offer_next(hl: Hotline, code: str, mid: str) -> None:
    """Offer text `mid` could not be delivered: the next person."""
    hl.enqueue(OFFER_NEXT, code, mid, job_id=f"next-{code}-{mid}")


def _ms(stamp: float | str | None) -> int:
    return int(float(stamp or 0) * 1000)


def remind(hl: Hotline, code: str, accepted_at: str) -> None:
    """Remind the taker after HOTLINE_REMIND_AFTER; the job does nothing if the ticket moved on."""
    hl.enqueue(REMIND, code, accepted_at, job_id=f"remind-{code}-{_ms(accepted_at)}",
               delay=hl.settings.remind_after)


def taken(hl: Hotline, code: str, accepted_at: float | None, taker: str, by: str = "",
          previous: str = "") -> None:
    """The follow-up texts of a take or assignment: one job per take (a re-take is a new one)."""
    hl.enqueue(TAKEN, code, taker, by, previous, job_id=f"taken-{code}-{_ms(accepted_at)}")


def done(hl: Hotline, code: str, by: str) -> None:
    """The follow-up texts of a close."""
    hl.enqueue(DONE, code, by, job_id=f"done-{code}")


def added(hl: Hotline, code: str, addition: str, lines: int) -> None:
    """Tell the taker what the resident added (the ticket's `lines`-th line)."""
    hl.enqueue(ADDED, code, addition, job_id=f"added-{code}-{lines}")


# --- recording by phone ----------------------------------------------------------------------

def keep_take(hl: Hotline, url: str, name: str, language: str, village: str, phone: str) -> None:
    """Fetch a take a recorder kept (`url`) and store it as prompt `name`; once per take."""
    digest = hashlib.sha1(url.encode(), usedforsecurity=False).hexdigest()
    hl.enqueue(KEEP_TAKE, url, name, language, village, phone, job_id=f"keep-{digest}")


# --- notices and sweeps ----------------------------------------------------------------------

def notice(hl: Hotline, nid: str, audience: str | None) -> None:
    """A notice's fan-out, once per notice and audience."""
    suffix = f"-{audience}" if audience else ""
    hl.enqueue(NOTICE, nid, audience, job_id=f"notice-{nid}{suffix}")


def sweep(hl: Hotline, every: float) -> None:
    """One sweep, ahead of any backlog; it expires unrun rather than pile up behind a busy worker."""
    hl.queue.enqueue(SWEEP, job_id=f"sweep-{int(time.time() * 10)}", at_front=True,
                     result_ttl=60, failure_ttl=86400, ttl=max(5, int(every * 3)))
