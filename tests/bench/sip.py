"""Eight gateway calls at once through the whole menu (1, then 1) over SIP, to `hotline sip` on two
addresses: all complete, the engines' CPU per call, and from a key's last RTP packet (as asked;
negative when the next prompt starts while the key still sounds: the engine takes a key at its
first packet) and from its first packet to the next prompt's first sound, beside the same web's
webhook round trip alone (the baseline: what the agent adds on top of the web: stopping the
prompt, the request, the next prompt's start)."""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests
from werkzeug.serving import make_server

from gateway import calls
from gateway.app import create_app
from gateway.context import Hotline
from gateway.settings import Settings
from gateway.sip.config import SipSettings
from gateway.sip.twiml_runner import signature
from tests.rtp_peer import DECODE, RtpPeer
from tests.sipp_scenario import gateway_call
from tests.test_sip import free_port, free_range
from tests.test_sip_calls import free_port_tcp

CALLS = 8
ADDRESSES = 2
GATEWAY = "127.0.0.2"


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


def _wait(check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.01)
    return None


def _one_call(port: int, caller: str, first_key: float, tmp: Path, index: int,
              out: dict[str, Any]) -> None:
    """One gateway line's call: 1 pressed `first_key` seconds after the first sound (into the
    menu prompt), 1 again 2 s into the confirmation; each key timed from its first packet (the
    engine takes a key there and stops the prompt) to the next prompt's first sound."""
    peer = RtpPeer()
    try:
        scenario = gateway_call(tmp / f"call{index}.xml", rtp_port=peer.port,
                                caller=caller.removeprefix("+86"), steps=(("their_bye", "120000"),))
        proc = subprocess.Popen([shutil.which("sipp") or "sipp", "-sf", str(scenario), "-i", GATEWAY,
                                 "-p", str(free_port()), "-mp", str(free_port()), "-m", "1",
                                 "-s", "12345", "-nostdin", f"127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        latencies: list[float] = []
        from_last: list[float] = []
        if peer.first_heard.wait(30):
            at = peer.heard[0].at + first_key
            for key in "11":
                time.sleep(max(0.0, at - time.monotonic()))
                pressed = time.monotonic()  # the key's first packet goes now
                peer.press(key)
                sent = time.monotonic()  # and its last (the end packets, three times)
                quiet = _first_silence_after(peer, pressed)
                gap = _first_sound_after(peer, quiet) if quiet is not None else None
                if gap is None or quiet is None:
                    break
                latencies.append(quiet + gap - pressed)
                # Negative when the next prompt began while the key still sounded.
                from_last.append(quiet + gap - sent)
                at = quiet + gap + 2.0
        out["latencies"] = latencies
        out["from_last"] = from_last
        rc = proc.wait(timeout=120)
        out["ok"] = rc == 0 and len(latencies) == 2
        if rc != 0 and proc.stderr is not None:
            out["sipp"] = proc.stderr.read().decode(errors="replace")[-300:]
        out["seconds"] = (peer.heard[-1].at - peer.heard[0].at) if peer.heard else 0.0
        # The longest silence on the wire, by the kernel's arrival stamps: a sender that stalled.
        audio = peer.audio()
        out["longest_gap"] = max((b.wire - a.wire for a, b in itertools.pairwise(audio)), default=0.0)
    finally:
        peer.close()


def _children_cpu(pid: int) -> float:
    """CPU seconds of `pid`'s children now (the engine processes of `hotline sip`)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        for child in children:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    except OSError:
        pass
    return total


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


def _ratio(value: float, base: float) -> str:
    """A ratio to the baseline; none for a negative figure (the prompt came before the key ended)."""
    return f"{value / base:.1f}x" if value >= 0 and base > 0 else "before"


def run(env: dict[str, str], tmp: Path) -> dict[str, Any]:
    if shutil.which("sipp") is None:
        return {"rows": {"SIP bench": ("skipped", "no sipp", "")}}
    try:
        import pjsua2  # noqa: F401
    except ImportError:
        return {"rows": {"SIP bench": ("skipped", "no pjsua2", "")}}
    from gateway.sip.agent import Agent
    from gateway.sip.twiml_runner import Gather, Pause, parse

    web_port = free_port_tcp()
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        settings = Settings.from_env().with_overrides(public_url=f"http://127.0.0.1:{web_port}")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    app = create_app(settings, url=env["REDIS_URL"])
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request in the table
    server = make_server("127.0.0.1", web_port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # Callers not in the ledger, each their own: every call takes the same path (menu, confirm,
    # the name recording, which ends by silence), and none finds another's open ticket.
    callers = [f"+8613700{i:06d}" for i in range(CALLS + 1)]
    # An 8-port gateway configured by line, lines 1-4 to one address and 5-8 to the other:
    # `hotline sip` runs an engine process per address (pjsua holds 4 calls per process).
    ports = [free_port() for _ in range(ADDRESSES)]
    rtp = free_range(20 * ADDRESSES)
    sip_env = {**env, "HOTLINE_PUBLIC_URL": settings.public_url, "HOTLINE_SIP_PEERS": GATEWAY,
               "HOTLINE_SIP_LISTEN": ",".join(f"127.0.0.1:{p}" for p in ports),
               "HOTLINE_SIP_RTP_PORTS": f"{rtp}-{rtp + 20 * ADDRESSES - 1}",
               "HOTLINE_LOG_LEVEL": "DEBUG"}  # every verb and request, kept when a call fails
    # When the menu listens, from the answer's own prompts (synthesised here once, into the
    # data folder the agents share): the first key goes 3 s into the menu prompt.
    probe = Agent(settings, SipSettings("", 0, ()))
    xml = calls.answer(Hotline(settings, url=env["REDIS_URL"]),
                       {"CallSid": "CA" + "f" * 32, "From": callers[0]})
    first_key = 3.0
    for verb, clips in probe._prepare(parse(xml, settings.public_url)):
        if isinstance(verb, Gather):
            break
        first_key += sum(c.seconds for c in clips) + (verb.length if isinstance(verb, Pause) else 0)
    probe.pool.shutdown()
    with open(tmp / "sip.log", "wb") as log_file:
        agents = subprocess.Popen([sys.executable, "-m", "gateway.cli", "sip"], env=sip_env,
                                  start_new_session=True, stdout=subprocess.DEVNULL, stderr=log_file)
    try:
        if not _wait(lambda: (tmp / "sip.log").read_text().count("SIP agent on") == ADDRESSES, 30):
            raise RuntimeError("hotline sip did not start: " + (tmp / "sip.log").read_text()[-500:])
        _one_call(ports[0], callers[0], first_key, tmp, 99, {})  # the rest of the prompts: not measured
        results: list[dict[str, Any]] = [{} for _ in range(CALLS)]
        cpu_before, wall_before = _children_cpu(agents.pid), time.monotonic()
        threads = [threading.Thread(target=_one_call,
                                    args=(ports[i * ADDRESSES // CALLS], callers[1 + i], first_key,
                                          tmp, i, results[i]))
                   for i in range(CALLS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=180)
        cpu = _children_cpu(agents.pid) - cpu_before
        wall = time.monotonic() - wall_before
        base = _baseline(f"{settings.public_url}/twilio/voice", settings.webhook_token(), callers[1])
    finally:
        os.killpg(agents.pid, signal.SIGTERM)
        agents.wait(timeout=20)
        server.shutdown()
    latencies = [x for r in results for x in r.get("latencies", [])]
    done = sum(1 for r in results if r.get("ok"))
    if done < CALLS:  # the agents' own account of what went wrong, kept past the scratch folder
        shutil.copy(tmp / "sip.log", "bench-sip.log")
    p50, p99 = _pct(latencies, 0.5) * 1000, _pct(latencies, 0.99) * 1000
    last = [x for r in results for x in r.get("from_last", [])]
    l50, l99 = _pct(last, 0.5) * 1000, _pct(last, 0.99) * 1000
    b50, b99 = _pct(base, 0.5) * 1000, _pct(base, 0.99) * 1000
    gap_ms = max(r.get("longest_gap", 0.0) for r in results) * 1000
    call_seconds = statistics.mean(r.get("seconds", 0.0) for r in results) or 1.0
    # The engine processes only (the web runs in this process): a core per call, over the call.
    per_call = cpu / CALLS / call_seconds * 100
    return {"calls": CALLS, "completed": done, "per_call": results, "cpu_seconds": cpu, "wall_seconds": wall,
            "key_to_prompt_ms": latencies and {"p50": p50, "p99": p99},
            "last_packet_to_prompt_ms": last and {"p50": l50, "p99": l99},
            "webhook_ms": {"p50": b50, "p99": b99}, "longest_gap_ms": gap_ms,
            "rows": {
                f"SIP calls completed of {CALLS} at once": (f"{done}", f"{CALLS}", f"{done / CALLS:.2f}x"),
                "SIP agent CPU per call, % of a core": (f"{per_call:.1f}", "", ""),
                # against the packet time: what a steady stream's gaps are
                "SIP longest silence on the wire ms (any call)": (f"{gap_ms:.0f}", "20",
                                                                   f"{gap_ms / 20:.1f}x"),
                "SIP key's last packet -> next prompt p50 ms":
                    (f"{l50:.0f}", f"{b50:.0f}", _ratio(l50, b50)),
                "SIP key's last packet -> next prompt p99 ms":
                    (f"{l99:.0f}", f"{b99:.0f}", _ratio(l99, b99)),
                "SIP key's first packet -> next prompt p50 ms":
                    (f"{p50:.0f}", f"{b50:.0f}", f"{p50 / b50:.1f}x"),
                "SIP key's first packet -> next prompt p99 ms":
                    (f"{p99:.0f}", f"{b99:.0f}", f"{p99 / b99:.1f}x"),
            }}
