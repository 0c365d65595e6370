"""The hotline as one object: settings plus the two Redis clients and the job queue, passed to domain code."""

from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from rq import Queue, Retry

from gateway import senders
from gateway.ledger import LedgerCopy
from gateway.senders import Sender
from gateway.settings import Settings
from gateway.store import BytesRedis, Redis, connect, redis_url, rq_connection

log = logging.getLogger(__name__)

QUEUE = "hotline"


@dataclass
class Hotline:
    """What every domain function needs; built once per process."""

    settings: Settings
    url: str = field(default="")

    def __post_init__(self) -> None:
        if not self.url:
            self.url = redis_url(self.settings)

    @cached_property
    def r(self) -> Redis:
        return connect(self.url)

    @cached_property
    def rq(self) -> BytesRedis:
        return rq_connection(self.url)

    @cached_property
    def ledger(self) -> LedgerCopy:
        """The people as webhooks see them: a copy at most HOTLINE_LEDGER_REFRESH seconds old."""
        return LedgerCopy(self.r, self.settings.ledger_refresh)

    @cached_property
    def pool(self) -> tuple[Sender, ...]:
        """The senders texts go out by (HOTLINE_CHANNELS_FILE, else the single channel)."""
        return senders.configured(self.settings, self.settings.channels_file)

    def sender(self, name: str) -> Sender | None:
        return next((s for s in self.pool if s.name == name), None)

    def with_settings(self, settings: Settings) -> Hotline:
        """The same hotline (its Redis clients, its queue) seen with other settings: a sender's."""
        other = Hotline(settings, url=self.url)
        for shared in ("r", "rq", "queue", "ledger"):
            if shared in self.__dict__:
                other.__dict__[shared] = self.__dict__[shared]
        return other

    @cached_property
    def queue(self) -> Queue:
        return Queue(QUEUE, connection=self.rq)

    def retry(self) -> Retry:
        """The retry policy every job is enqueued with: first within HOTLINE_RETRY_FIRST, then
        doubling up to HOTLINE_RETRY_MAX, for HOTLINE_RETRY_FOR in all.

        Each job gets its own jitter (first try at 50-100% of the first gap, later ones at
        80-120%), so a backlog does not hammer a provider that has just come back in step.
        """
        s = self.settings
        cap, rand = s.retry_max, random.random  # locals: this runs for every job enqueued
        gap = float(max(s.retry_first, 1))
        wait = max(1, round(min(gap * (0.5 + 0.5 * rand()), cap)))
        intervals = [wait]
        total = wait
        while total < s.retry_for:
            gap = min(gap * 2, cap)
            wait = max(1, round(min(gap * (0.8 + 0.4 * rand()), cap)))
            intervals.append(wait)
            total += wait
        return Retry(max=len(intervals), interval=intervals)

    def enqueue(self, func: str, *args: Any, job_id: str | None = None,
                delay: float | None = None, at_front: bool = False,
                pipeline: Any = None) -> None:
        """Queue a job by dotted path, so the web process never imports worker code.

        `pipeline` (a MULTI of `self.rq`, not delayed) makes the job part of the caller's
        transaction: it is queued together with the writes it acts on, or not at all.
        """
        if job_id:
            # RQ accepts letters, digits, _ and - only; ids built from timestamps carry dots.
            job_id = re.sub(r"[^A-Za-z0-9_-]", "_", job_id)
        kwargs: dict[str, Any] = {"job_id": job_id, "retry": self.retry(),
                                  "failure_ttl": 30 * 86400}
        if pipeline is not None and not delay:
            self.queue.enqueue(func, *args, at_front=at_front, pipeline=pipeline, **kwargs)
        elif delay:
            from datetime import timedelta

            self.queue.enqueue_in(timedelta(seconds=delay), func, *args, **kwargs)
        else:
            self.queue.enqueue(func, *args, at_front=at_front, **kwargs)
