"""Eight gateway calls at once through the whole menu (1, then 1) over SIP: all complete, CPU per
call, and from a key's last RTP packet to the next prompt's first sound, beside the same web's
webhook round trip alone (the baseline: what the agent adds on top of the web)."""

from __future__ import annotations

import ipaddress
import os
import resource
import shutil
import statistics
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import requests
from werkzeug.serving import make_server

from gateway.app import create_app
from gateway.settings import Settings
from gateway.sip.config import SipSettings
from gateway.sip.twiml_runner import signature
from tests.rtp_peer import DECODE, RtpPeer
from tests.sipp_scenario import gateway_call
from tests.test_sip import free_port
from tests.test_sip_calls import free_port_tcp

CALLS = 8
GATEWAY = "127.0.0.2"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _first_sound_after(peer: RtpPeer, after: float, timeout: float = 20.0) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for heard in list(peer.heard):
            if heard.at > after and heard.payload_type in DECODE and \
                    max(abs(DECODE[heard.payload_type][b]) for b in heard.payload) > 500:
                return heard.at - after
        time.sleep(0.005)
    return None


def _first_silence_after(peer: RtpPeer, after: float, timeout: float = 20.0) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for heard in list(peer.heard):
            if heard.at > after and heard.payload_type in DECODE and \
                    max(abs(DECODE[heard.payload_type][b]) for b in heard.payload) <= 64:
                return heard.at
        time.sleep(0.005)
    return None


def _gathering(agent: Any, caller: str, after: int) -> Any:
    for run in list(agent.runs.values()):
        if run.fields.caller == caller and run.gather is not None and \
                run.clip_until is not None and run.epoch > after:
            return run
    return None


def _wait(check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.01)
    return None


def _one_call(agent: Any, caller: str, tmp: Path, index: int, out: dict[str, Any]) -> None:
    peer = RtpPeer()
    try:
        scenario = gateway_call(tmp / f"call{index}.xml", rtp_port=peer.port,
                                caller=caller.removeprefix("+86"), steps=(("their_bye", "120000"),))
        proc = subprocess.Popen([shutil.which("sipp") or "sipp", "-sf", str(scenario), "-i", GATEWAY,
                                 "-p", str(free_port()), "-mp", str(free_port()), "-m", "1",
                                 "-s", "12345", "-nostdin",
                                 f"127.0.0.1:{agent.sip.port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        latencies: list[float] = []
        epoch = 0
        for key in "11":
            run = _wait(lambda at=epoch: _gathering(agent, caller, at), 60)
            if run is None:
                break
            epoch = run.epoch
            pressed = time.monotonic()
            peer.press(key)
            sent = time.monotonic()  # the key's last packet has just gone
            # The engine takes a key at its first packet, so the next prompt may start before
            # the last one goes: measured to the prompt's first sound after the silence that
            # stopping the old prompt leaves, from the last packet (0 if already playing).
            quiet = _first_silence_after(peer, pressed)
            gap = _first_sound_after(peer, quiet) if quiet is not None else None
            if gap is not None and quiet is not None:
                latencies.append(max(0.0, quiet + gap - sent))
        out["latencies"] = latencies
        rc = proc.wait(timeout=120)
        out["ok"] = rc == 0 and len(latencies) == 2
        if rc != 0 and proc.stderr is not None:
            out["sipp"] = proc.stderr.read().decode(errors="replace")[-300:]
        out["seconds"] = (peer.heard[-1].at - peer.heard[0].at) if peer.heard else 0.0
    finally:
        peer.close()


def _baseline(url: str, token: str, caller: str, n: int = 60) -> list[float]:
    """The webhook round trip alone: the answer step, signed, over HTTP, one at a time."""
    session = requests.Session()
    times = []
    for i in range(n):
        form = {"CallSid": f"CA{i:032x}", "From": caller, "To": "12345", "CallStatus": "ringing",
                "Direction": "inbound", "AccountSid": "AC" + "0" * 32}
        started = time.monotonic()
        session.post(url, data=form, headers={"X-Twilio-Signature": signature(token, url, form)},
                     timeout=10).raise_for_status()
        times.append(time.monotonic() - started)
    return times


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run(env: dict[str, str], tmp: Path) -> dict[str, Any]:
    if shutil.which("sipp") is None:
        return {"rows": {"SIP bench": ("skipped", "no sipp", "")}}
    try:
        import pjsua2  # noqa: F401
    except ImportError:
        return {"rows": {"SIP bench": ("skipped", "no pjsua2", "")}}
    from gateway.sip.agent import Agent

    web_port = free_port_tcp()
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        settings = Settings.from_env().with_overrides(public_url=f"http://127.0.0.1:{web_port}")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    app = create_app(settings, url=env["REDIS_URL"])
    server = make_server("127.0.0.1", web_port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rtp = free_port()
    sip = SipSettings(host="127.0.0.1", port=free_port(), peers=(ipaddress.ip_network(GATEWAY),),
                      rtp_first=rtp, rtp_last=rtp + 4 * CALLS + 8)
    agent = Agent(settings, sip)
    agent.start()
    # Callers not in the ledger, each their own: every call takes the same path (menu, confirm,
    # the name recording, which ends by silence), and none finds another's open ticket.
    callers = [f"+8613700{i:06d}" for i in range(CALLS + 1)]
    try:
        _one_call(agent, callers[0], tmp, 99, {})  # synthesises every prompt once: not measured
        results: list[dict[str, Any]] = [{} for _ in range(CALLS)]
        cpu_before, wall_before = _cpu(), time.monotonic()
        threads = [threading.Thread(target=_one_call, args=(agent, callers[1 + i],
                                                          tmp, i, results[i]))
                   for i in range(CALLS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=180)
        cpu = _cpu() - cpu_before
        wall = time.monotonic() - wall_before
        base = _baseline(f"{settings.public_url}/twilio/voice", settings.webhook_token(), callers[1])
    finally:
        agent.stop()
        server.shutdown()
    latencies = [x for r in results for x in r.get("latencies", [])]
    done = sum(1 for r in results if r.get("ok"))
    p50, p99 = _pct(latencies, 0.5) * 1000, _pct(latencies, 0.99) * 1000
    b50, b99 = _pct(base, 0.5) * 1000, _pct(base, 0.99) * 1000
    call_seconds = statistics.mean(r.get("seconds", 0.0) for r in results) or 1.0
    # The process holds the web too (its CPU is in the figure): a core per call, over the call.
    per_call = cpu / CALLS / call_seconds * 100
    return {"calls": CALLS, "completed": done, "per_call": results, "cpu_seconds": cpu, "wall_seconds": wall,
            "key_to_prompt_ms": latencies and {"p50": p50, "p99": p99},
            "webhook_ms": {"p50": b50, "p99": b99},
            "rows": {
                f"SIP calls completed of {CALLS} at once": (f"{done}", f"{CALLS}", f"{done / CALLS:.2f}x"),
                "SIP CPU per call, % of a core (web incl.)": (f"{per_call:.1f}", "", ""),
                "SIP key -> next prompt p50 ms": (f"{p50:.0f}", f"{b50:.0f}", f"{p50 / b50:.1f}x"),
                "SIP key -> next prompt p99 ms": (f"{p99:.0f}", f"{b99:.0f}", f"{p99 / b99:.1f}x"),
            }}
