"""The retry policy every job carries: soon at first, doubling to a cap, jittered, for a bounded time."""

from __future__ import annotations

from pathlib import Path

from gateway.context import Hotline
from gateway.settings import Settings


def test_retries_back_off_with_jitter_and_stop_after_retry_for(tmp_path: Path) -> None:
    s = Settings(redis_url="redis://127.0.0.1:1/0", data_dir=tmp_path, retry_first=10,
                 retry_max=600, retry_for=86400)
    hl = Hotline(s)
    policies = [hl.retry() for _ in range(20)]
    for policy in policies:
        gaps = policy.intervals
        assert 5 <= gaps[0] <= 10
        assert max(gaps) <= 600
        assert sum(gaps) >= 86400 and sum(gaps[:-1]) < 86400
        assert gaps[3] > gaps[0] * 4  # roughly doubling
    assert len({tuple(p.intervals[:6]) for p in policies}) > 1, "every job gets its own jitter"
