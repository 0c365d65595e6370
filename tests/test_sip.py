"""The SIP agent over loopback, with SIPp playing a gateway."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_tool

if os.environ.get("HOTLINE_REQUIRE_ALL") == "1":
    import pjsua2  # noqa: F401  (missing: fail, do not skip)
else:
    pytest.importorskip("pjsua2")
HERE = Path(__file__).parent / "sipp"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_range(size: int) -> int:
    """The first of `size` UDP ports, all free now, below the kernel's ephemeral range: where
    free_port() and SIPp's own ports come from, so an agent's RTP range never meets them."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    span = low - 10000 - size
    for attempt in range(200):  # from a place of this process's own, so parallel runs differ
        first = 10000 + (os.getpid() * 7919 + attempt * size) % span
        socks: list[socket.socket] = []
        try:
            for port in range(first, first + size):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError(f"no {size} free UDP ports in a row below {low}")



def _drive(engine: Any, proc: subprocess.Popen[bytes]) -> int:
    """Turn the engine's event loop until SIPp ends (10 s at most); SIPp's exit code."""
    try:
        for _ in range(1000):
            engine.run_once(10)
            if proc.poll() is not None:
                break
        return proc.wait(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
        engine.close()

@pytest.mark.slow
def test_non_peer_gets_403() -> None:
    from gateway.sip.config import from_env
    from gateway.sip.engine import IncomingCall
    from gateway.sip.pjsip_engine import PjsipEngine

    sipp = require_tool("sipp", "sip-tester")
    port = free_port()
    (settings,) = from_env({"HOTLINE_SIP_LISTEN": f"127.0.0.1:{port}", "HOTLINE_SIP_PEERS": "127.0.0.2"})
    engine = PjsipEngine("127.0.0.1", port)
    seen: list[str] = []

    def decide(call: IncomingCall) -> bool:
        seen.append(call.source)
        return settings.allows(call.source)

    engine.on_call(decide)
    proc = subprocess.Popen([sipp, "-sf", str(HERE / "refused.xml"), "-i", "127.0.0.1",
                             "-p", str(free_port()), "-m", "1", "-s", "10000", "-nostdin",
                             f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    rc = _drive(engine, proc)
    assert seen == ["127.0.0.1"]
    assert rc == 0, proc.stderr.read() if proc.stderr else ""


@pytest.mark.slow
def test_peer_call_is_answered() -> None:
    from gateway.sip.engine import IncomingCall
    from gateway.sip.pjsip_engine import PjsipEngine

    sipp = require_tool("sipp", "sip-tester")
    port = free_port()
    engine = PjsipEngine("127.0.0.1", port)
    seen: list[IncomingCall] = []

    def decide(call: IncomingCall) -> bool:
        seen.append(call)
        return call.source == "127.0.0.2"

    engine.on_call(decide)
    proc = subprocess.Popen([sipp, "-sn", "uac", "-i", "127.0.0.2", "-p", str(free_port()),
                             "-mp", str(free_port()), "-m", "1", "-s", "4001", "-d", "500",
                             "-nostdin", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    rc = _drive(engine, proc)
    assert [(c.source, c.called) for c in seen] == [("127.0.0.2", "4001")]
    assert rc == 0, proc.stderr.read() if proc.stderr else ""
