"""End to end: signed SMS webhook to an offer accepted by a local fake Twilio, beside no-op RQ jobs."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from rq import Queue

from gateway.app import create_app
from gateway.context import QUEUE
from gateway.settings import ROOT, Settings
from gateway.store import rq_connection
from tests.conftest import post_twilio
from tests.fake_twilio import FakeTwilio, start_worker, twilio_env, wait_until

TICKETS = 300
WORKERS = 2


def stranger(i: int) -> str:
    return f"+86136{i:08d}"


def run(env: dict[str, str], tmp: Path) -> dict[str, Any]:
    """Tickets per second through WORKERS `hotline worker`s, pacing off, and the same workers'
    rate for plain no-op jobs; the ratio is the figure."""
    # The tests validate every request; here the fake should cost as little as it can.
    with FakeTwilio(validate=False) as fake:
        wenv = twilio_env(fake, env["REDIS_URL"], tmp / "e2e", HOTLINE_SMS_RATE="0",
                          HOTLINE_INBOUND_LIMIT="1000000", HOTLINE_LOG_LEVEL="WARNING",
                          PYTHONPATH=str(ROOT))  # the workers import tests.bench.jobs
        workers = [start_worker(wenv, tmp) for _ in range(WORKERS)]
        try:
            baseline = _noop_rate(env["REDIS_URL"])
            tickets = _ticket_rate(wenv, fake)
        finally:
            for w in workers:
                os.killpg(w.pid, signal.SIGTERM)
            for w in workers:
                w.wait(timeout=30)
    ratio = tickets / baseline
    return {"tickets_per_s": tickets, "noop_jobs_per_s": baseline, "ratio": ratio,
            "workers": WORKERS, "tickets": TICKETS,
            "rows": {f"end to end tickets/s ({WORKERS} workers)":
                     (f"{tickets:.1f}", f"{baseline:.1f}", f"{ratio:.2f}x")}}


def _noop_rate(redis_url: str) -> float:
    connection = rq_connection(redis_url)
    queue = Queue(QUEUE, connection=connection)
    counter = "bench:noop"
    connection.delete(counter)
    start = time.perf_counter()
    for _ in range(TICKETS):
        queue.enqueue("tests.bench.jobs.noop", counter)
    wait_until(lambda: int(connection.get(counter) or 0) >= TICKETS, timeout=300)
    return TICKETS / (time.perf_counter() - start)


def _ticket_rate(wenv: dict[str, str], fake: FakeTwilio) -> float:
    """Each text from a new number opens a triage ticket offered to the one duty officer."""
    settings = Settings.from_env(wenv)
    client = create_app(settings).test_client()
    before = len(fake.sends())
    start = time.perf_counter()
    for i in range(TICKETS):
        params = {"MessageSid": f"SMe2e{i:029d}", "From": stranger(i), "To": "+8647100000000",
                  "Body": "1 要降压药"}
        response = post_twilio(client, "/twilio/sms", params, token=settings.webhook_token())
        assert response.status_code == 200, response.status_code
    wait_until(lambda: len(fake.sends()) - before >= TICKETS, timeout=600)
    return TICKETS / (time.perf_counter() - start)
