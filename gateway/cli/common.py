"""What every command needs: settings checked once, and a Redis (the embedded one started if need be)."""

from __future__ import annotations

import atexit
import sys
from functools import lru_cache

import click

from gateway import registry
from gateway.context import Hotline
from gateway.embedded import EmbeddedRedis, EmbeddedRedisError
from gateway.registry import Village
from gateway.settings import ConfigError, Settings


@lru_cache(maxsize=1)
def settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        click.echo(f"hotline: bad setting {exc}", err=True)
        sys.exit(2)


@lru_cache(maxsize=1)
def hotline() -> Hotline:
    """The hotline over REDIS_URL, or over the embedded server (started for this command if
    `hotline run` is not running, and stopped again at exit)."""
    s = settings()
    if s.redis_url:
        return Hotline(s)
    server = EmbeddedRedis(s.data_dir)
    try:
        if server.start():
            atexit.register(server.stop)
    except EmbeddedRedisError as exc:
        click.echo(f"hotline: {exc}", err=True)
        sys.exit(1)
    return Hotline(s, url=server.url)


def village_id(hl: Hotline, name_or_id: str | None) -> str | None:
    """Resolve --village to an id, or stop with a clear message."""
    return _village(hl, name_or_id).id if name_or_id else None


def village_name(hl: Hotline, name_or_id: str | None) -> str:
    """Resolve --village to its name as the registry writes it ("" without one), or stop."""
    return _village(hl, name_or_id).name if name_or_id else ""


def _village(hl: Hotline, name_or_id: str) -> Village:
    village = registry.find_village(hl.r, name_or_id)
    if village is None:
        known = ", ".join(v.name for v in registry.villages(hl.r)) or "none yet"
        click.echo(f"hotline: no village {name_or_id!r} (known: {known})", err=True)
        sys.exit(2)
    return village
