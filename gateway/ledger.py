"""The webhooks' copy of the ledger's people, so a call or text finds its sender without a Redis round trip.

A ledger import writes a new `people:version` token. Each process checks that token
at most once every HOTLINE_LEDGER_REFRESH seconds and reloads every person when it
changed, so an import reaches the webhooks within that time. With the setting at 0
there is no copy: every lookup reads Redis.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from gateway import registry
from gateway.registry import Person
from gateway.store import KEYS, Redis

log = logging.getLogger(__name__)


class LedgerCopy:
    """People by phone number, as of the last check; shared by a process's threads."""

    def __init__(self, r: Redis, refresh: float) -> None:
        self.r = r
        self.refresh = refresh
        self._people: dict[str, Person] | None = None
        self._version: str | None = None
        self._next_check = 0.0
        self._reloading = threading.Lock()

    def person(self, phone: str) -> Person | None:
        if self.refresh <= 0:
            return registry.person(self.r, phone)
        return self._current().get(phone)

    def _current(self) -> dict[str, Person]:
        people = self._people
        if people is not None and time.monotonic() < self._next_check:
            return people
        # One thread checks; the others go on with the copy they have (if there is one yet).
        if not self._reloading.acquire(blocking=people is None):
            assert people is not None
            return people
        try:
            if self._people is not None and time.monotonic() < self._next_check:
                return self._people
            try:
                version = self.r.get(KEYS.people_version)
                if self._people is None or version != self._version:
                    # The version is read first: an import in between only causes one more reload.
                    self._people = _load(self.r)
                    self._version = version
            except (redis.RedisError, OSError):
                if self._people is None:
                    raise
                log.warning("ledger copy: Redis is away; answering from the copy in hand")
            self._next_check = time.monotonic() + self.refresh
            return self._people
        finally:
            self._reloading.release()


def _load(r: Redis) -> dict[str, Person]:
    phones = sorted(r.smembers(KEYS.people))
    return {p.phone: p for p in registry.people(r, phones)}
