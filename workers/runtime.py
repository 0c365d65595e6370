"""The hotline as a worker process sees it: built once from the environment, reused by every job."""

from __future__ import annotations

from gateway.context import Hotline
from gateway.settings import Settings

_current: Hotline | None = None


def hotline() -> Hotline:
    global _current
    if _current is None:
        _current = Hotline(Settings.from_env())
    return _current


def use(hl: Hotline | None) -> None:
    """Make jobs in this process use `hl` (an in-process worker, e.g. in tests)."""
    global _current
    _current = hl
