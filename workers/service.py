"""Running the workers: a non-forking RQ worker with the scheduler, so retries and timers fire."""

from __future__ import annotations

import logging

from rq import SimpleWorker

from gateway.context import QUEUE, Hotline

log = logging.getLogger(__name__)


def run_worker(hl: Hotline, *, burst: bool = False) -> bool:
    worker = SimpleWorker([QUEUE], connection=hl.rq)
    return bool(worker.work(burst=burst, with_scheduler=True, logging_level="INFO"))
