"""Notice fan-out: one SMS per recipient, each its own send job, so pacing and opt-outs apply."""

from __future__ import annotations

from dataclasses import asdict

from gateway import notices
from workers.runtime import hotline


def send_notice(nid: str, audience: str | None = None) -> dict[str, int]:
    """Queue the notice's SMS for `audience` (default: the notice's own); a re-run sends
    nobody twice. Returns the counts, which RQ keeps as the job's result."""
    return asdict(notices.fan_out(hotline(), nid, audience))
