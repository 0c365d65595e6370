"""The baseline job for `make bench`: as close to nothing as a job can be, counted in Redis."""

from __future__ import annotations

import os

import redis


def noop(counter: str) -> None:
    redis.Redis.from_url(os.environ["REDIS_URL"]).incr(counter)
