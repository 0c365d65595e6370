"""Notice fan-out: one SMS per recipient, each its own job, so pacing and opt-outs apply."""

from __future__ import annotations

from gateway import notices
from workers.runtime import hotline


def send_notice(nid: str) -> int:
    return notices.send(hotline(), nid)
