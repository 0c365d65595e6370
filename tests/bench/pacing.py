"""Pacing accuracy: messages to many numbers at HOTLINE_SMS_RATE through two workers, seen by the fake."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from gateway import messages
from gateway.context import Hotline
from gateway.settings import Settings
from tests.fake_twilio import FakeTwilio, start_worker, twilio_env, wait_until

RATE = 5.0
COUNT = 40


def run(env: dict[str, str], tmp: Path) -> dict[str, Any]:
    with FakeTwilio(validate=False) as fake:
        wenv = twilio_env(fake, env["REDIS_URL"], tmp / "pacing", HOTLINE_SMS_RATE=str(RATE),
                          HOTLINE_LOG_LEVEL="WARNING")
        hl = Hotline(Settings.from_env(wenv))
        workers = [start_worker(wenv, tmp) for _ in range(2)]
        try:
            before = len(fake.sends())
            for i in range(COUNT):
                messages.queue_sms(hl, f"+86135{i:08d}", "通知：明天上午九点接种疫苗。", kind="notice")
            wait_until(lambda: len(fake.sends()) - before >= COUNT, timeout=COUNT / RATE * 4 + 30)
            times = sorted(fake.send_times()[-COUNT:])
        finally:
            for w in workers:
                os.killpg(w.pid, signal.SIGTERM)
            for w in workers:
                w.wait(timeout=30)
    achieved = (len(times) - 1) / (times[-1] - times[0])
    busiest = max(sum(1 for t in times if s <= t < s + 1) for s in times)
    too_many = sum(1 for r in fake.sends() if r.status == 429)
    return {"configured_per_s": RATE, "achieved_per_s": achieved, "ratio": achieved / RATE,
            "max_in_one_second": busiest, "http_429": too_many,
            "rows": {"pacing msgs/s (limit as baseline)":
                     (f"{achieved:.2f}", f"{RATE:.2f}", f"{achieved / RATE:.2f}x"),
                     "pacing most in any 1 s window": (str(busiest), f"{RATE:.0f}", "")}}
