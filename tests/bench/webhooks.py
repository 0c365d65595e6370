"""Throughput and latency of the webhooks under gunicorn, each beside the bare baseline in the same run."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from twilio.request_validator import RequestValidator

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def gunicorn(env: dict[str, str]) -> Iterator[str]:
    """The bench app under gunicorn with deploy/gunicorn.conf.py, on a free loopback port;
    yields its base URL."""
    port = free_port()
    # Output goes to a file read only if gunicorn fails: a pipe nobody reads could fill up.
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
             "--log-level", "warning", "tests.bench.app:create()"],
            # No access log and no recycling of processes: both would cost the two sides alike.
            env={**env, "HOTLINE_BIND": f"127.0.0.1:{port}", "HOTLINE_ACCESS_LOG": "",
                 "HOTLINE_WEB_MAX_REQUESTS": "0"},
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
        base = f"http://127.0.0.1:{port}"

        def said() -> str:
            log.seek(0)
            return log.read().decode(errors="replace")[-1500:]

        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(base + "/healthz", timeout=1).read()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"gunicorn did not start: {said()}") from None
                    time.sleep(0.2)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise RuntimeError(f"gunicorn did not stop: {said()}") from None


def write_requests(path: Path, public_url: str, token: str, route: str, count: int,
                   params_for: Callable[[int], dict[str, str]]) -> None:
    """`count` distinct requests to `route`, each signed exactly as Twilio signs."""
    validator = RequestValidator(token)
    with path.open("w") as fh:
        for i in range(count):
            params = params_for(i)
            signature = validator.compute_signature(public_url + route, params)
            fh.write(f"{route}\t{signature}\t{urllib.parse.urlencode(params)}\n")


def wrk(base: str, requests_file: Path, seconds: int, connections: int,
        threads: int = 2, keepalive: bool = False) -> dict[str, float]:
    """Run wrk with the replay script; return requests/s, p50 and p99 in milliseconds.

    Each request on a new connection unless `keepalive`: that is how nginx, as deploy/ sets
    it up, passes webhooks to gunicorn.
    """
    binary = shutil.which("wrk")
    if not binary:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    env = {**os.environ, "REQUESTS": str(requests_file), "WRK_THREADS": str(threads),
           "WRK_CLOSE": "0" if keepalive else "1"}
    out = subprocess.run(
        [binary, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
         "-s", str(HERE / "webhooks.lua"), base],
        env=env, capture_output=True, text=True, check=True).stdout
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": _ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1)),  # type: ignore[union-attr]
        "p99_ms": _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1)),  # type: ignore[union-attr]
        "non_2xx": float(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)) else 0.0,
        "requests": float(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
    }


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]
