"""The hotline as one object: settings plus the two Redis clients and the job queue, passed to domain code."""

from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from rq import Queue, Retry

from gateway.settings import Settings
from gateway.store import Redis, connect, redis_url, rq_connection

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
    def rq(self) -> Redis:
        return rq_connection(self.url)

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
        intervals: list[int] = []
        gap, total = float(max(s.retry_first, 1)), 0
        while total < s.retry_for:
            spread = (0.5, 1.0) if not intervals else (0.8, 1.2)
            wait = max(1, round(min(gap * random.uniform(*spread), s.retry_max)))
            intervals.append(wait)
            total += wait
            gap = min(gap * 2, s.retry_max)
        return Retry(max=len(intervals), interval=intervals)

    def enqueue(self, func: str, *args: Any, job_id: str | None = None,
                delay: float | None = None, at_front: bool = False) -> None:
        """Queue a job by dotted path, so the web process never imports worker code."""
        if job_id:
            # RQ accepts letters, digits, _ and - only; ids built from timestamps carry dots.
            job_id = re.sub(r"[^A-Za-z0-9_-]", "_", job_id)
        kwargs: dict[str, Any] = {"job_id": job_id, "retry": self.retry(),
                                  "failure_ttl": 30 * 86400}
        if delay:
            from datetime import timedelta

            self.queue.enqueue_in(timedelta(seconds=delay), func, *args, **kwargs)
        else:
            self.queue.enqueue(func, *args, at_front=at_front, **kwargs)
