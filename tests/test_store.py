"""REDIS_URL forms the store accepts, tried against real servers: a Sentinel set names the master."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from gateway.embedded import redis_server_binary
from gateway.store import connect, rq_connection


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(port: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis(port=port, socket_timeout=1).ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[int]:
    """A master on loopback and one Sentinel watching it as `hotline`; yields the Sentinel's port."""
    master, watcher = free_port(), free_port()
    config = tmp_path / "sentinel.conf"
    config.write_text(f"port {watcher}\nbind 127.0.0.1\ndir {tmp_path}\n"
                      f"sentinel monitor hotline 127.0.0.1 {master} 1\n")
    binary = redis_server_binary()
    procs = [subprocess.Popen([binary, "--port", str(master), "--bind", "127.0.0.1", "--save", "",
                               "--dir", str(tmp_path)], stdout=subprocess.DEVNULL),
             subprocess.Popen([binary, str(config), "--sentinel"], stdout=subprocess.DEVNULL)]
    try:
        wait_for(master)
        wait_for(watcher)
        yield watcher
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)


def test_a_sentinel_url_reaches_the_current_master(sentinel: int) -> None:
    url = f"redis+sentinel://127.0.0.1:{sentinel}/hotline/0"
    r = connect(url)
    r.set("hl:probe", "你好")
    assert r.get("hl:probe") == "你好"  # the domain client decodes
    assert rq_connection(url).get("hl:probe") == "你好".encode()  # RQ's does not


def test_a_sentinel_url_without_a_master_name_is_refused() -> None:
    with pytest.raises(ValueError, match="names its master"):
        connect("redis+sentinel://127.0.0.1:26379")
