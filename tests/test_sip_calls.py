"""Calls from a GSM gateway, end to end: SIPp signals as the gateway, tests.rtp_peer is its audio
(sip-tester's own key and speech captures), the SIP agent runs the menu by calling the real web
over HTTP, and tickets land in the real Redis."""

from __future__ import annotations

import ipaddress
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server

from gateway import calls, spool, tickets
from gateway.app import create_app
from gateway.context import Hotline
from gateway.sip.config import SipSettings
from gateway.sip.twiml_runner import Gather, Pause, parse
from tests.conftest import RESIDENT, require_tool
from tests.fake_twilio import wait_until
from tests.rtp_peer import PCMA, PCMU, RtpPeer
from tests.sipp_scenario import gateway_call
from tests.test_sip import free_port, free_range

if os.environ.get("HOTLINE_REQUIRE_ALL") == "1":
    import pjsua2  # noqa: F401  (missing: fail, do not skip)
else:
    pytest.importorskip("pjsua2")

pytestmark = pytest.mark.slow
GATEWAY = "127.0.0.2"  # SIPp binds here: the one peer the agent answers


class Web:
    """The county web, served over HTTP on a fixed port so that it can go away and come back."""

    def __init__(self, settings: object, url: str, port: int) -> None:
        self.app = create_app(settings, url=url)  # type: ignore[arg-type]
        self.port = port
        self.server: object = None
        self.thread: threading.Thread | None = None

    def up(self) -> None:
        self.server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)  # type: ignore[attr-defined]
        self.thread.start()

    def down(self) -> None:
        if self.server is not None:
            self.server.shutdown()  # type: ignore[attr-defined]
            self.server.server_close()  # type: ignore[attr-defined]
            self.server = None
        if self.thread is not None:
            self.thread.join(timeout=5)


@dataclass
class Office:
    hl: Hotline
    agent: object
    port: int
    web: Web
    tmp: Path

    def call(self, scenario: Path, *extra: str, source: str = GATEWAY) -> subprocess.Popen[bytes]:
        sipp = require_tool("sipp", "sip-tester")
        return subprocess.Popen([sipp, "-sf", str(scenario), "-i", source, "-p", str(free_port()),
                                 "-mp", str(free_port()),
                                 "-m", "1", "-s", "12345", "-nostdin", "-trace_msg",
                                 "-message_file", str(self.tmp / "sipp-messages.log"), *extra,
                                 f"127.0.0.1:{self.port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def free_port_tcp() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def office(sample: Hotline, tmp_path: Path) -> Iterator[Office]:
    from gateway.sip.agent import Agent

    web_port = free_port_tcp()
    settings = sample.settings.with_overrides(public_url=f"http://127.0.0.1:{web_port}")
    web = Web(settings, sample.url, web_port)
    web.up()
    port = free_port()
    rtp = free_range(41)
    sip = SipSettings(host="127.0.0.1", port=port, peers=(ipaddress.ip_network(GATEWAY),),
                      rtp_first=rtp, rtp_last=rtp + 40)
    agent = Agent(settings, sip, replay_every=1)
    agent.start()
    try:
        yield Office(Hotline(settings, url=sample.url), agent, port, web, tmp_path)
    finally:
        agent.stop()
        web.down()


@pytest.fixture
def peer() -> Iterator[RtpPeer]:
    media = RtpPeer()
    yield media
    media.close()


def gathering(agent: object, after: int = 0) -> object:
    """The call whose <Gather> is playing its prompt, once its request count passes `after`."""
    runs = list(agent.runs.values())  # type: ignore[attr-defined]
    for run in runs:
        if run.gather is not None and run.clip_until is not None and run.epoch > after:
            return run
    return None


def finish(proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    try:
        rc = proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 0, proc.stderr.read().decode()[-2000:] if proc.stderr else rc


def test_keys_one_then_one_by_rfc2833_make_a_medicine_ticket_and_the_caller_hears_the_menu(
        office: Office, peer: RtpPeer, tmp_path: Path) -> None:
    scenario = gateway_call(tmp_path / "call.xml", rtp_port=peer.port, caller="13900000001",
                            codecs=("PCMA", "PCMU"), steps=(("their_bye", "90000"),))
    proc = office.call(scenario)
    asked = wait_until(lambda: gathering(office.agent), timeout=40).epoch  # type: ignore[attr-defined]
    peer.press("1")  # during the menu prompt: it stops and the key is taken
    wait_until(lambda: gathering(office.agent, after=asked), timeout=20)
    peer.press("1")
    finish(proc, timeout=90)  # the hotline reads the code, says goodbye and hangs up
    ticket = tickets.open_ticket_of(office.hl, RESIDENT)
    assert ticket is not None and (ticket.category, ticket.channel) == ("medicine", "voice")
    heard = peer.audio()
    assert {h.payload_type for h in heard} == {PCMA}  # the gateway's first choice
    assert {len(h.payload) for h in heard} == {160}  # 20 ms packets
    assert peer.loud_packets() > 5 * 50  # several seconds of speech, not silence
    assert office.agent.ended[-1].keys == ["1", "1"]  # type: ignore[attr-defined]


def intro_seconds(office: Office, caller: str) -> float:
    """How long the answer plays before its menu listens: its prompts and pauses (cached)."""
    xml = calls.answer(office.hl, {"From": caller, "CallSid": "CA" + "0" * 32})
    total = 0.0
    for verb, clips in office.agent._prepare(parse(xml, "http://x")):  # type: ignore[attr-defined]
        if isinstance(verb, Gather):
            return total
        total += sum(c.seconds for c in clips) + (verb.length if isinstance(verb, Pause) else 0)
    raise AssertionError("the answer has no menu")


def test_keys_by_sip_info_make_the_ticket_and_a_pcmu_first_caller_hears_pcmu(
        office: Office, peer: RtpPeer, tmp_path: Path) -> None:
    # SIPp cannot wait for a prompt, so its keys are timed from the answer's own prompts: the
    # first comes 2 s into the menu prompt (about 12 s long, then 10 s of listening), the second
    # 3 s into the confirmation (about 5 s, then 10 s): seconds of margin either way.
    first = round((intro_seconds(office, RESIDENT) + 2.0) * 1000)
    scenario = gateway_call(tmp_path / "info.xml", rtp_port=peer.port, caller="13900000001",
                            codecs=("PCMU", "PCMA"),
                            steps=(("pause", str(first)), ("info", "1"), ("pause", "3000"),
                                   ("info", "1"), ("their_bye", "60000")))
    proc = office.call(scenario)
    threading.Thread(target=lambda: peer.first_heard.wait(10) and peer.send([]), daemon=True).start()
    finish(proc, timeout=90)
    ticket = tickets.open_ticket_of(office.hl, RESIDENT)
    assert ticket is not None and ticket.category == "medicine"
    assert office.agent.ended[-1].keys == ["1", "1"]  # type: ignore[attr-defined]
    heard = peer.audio()
    assert {h.payload_type for h in heard} == {PCMU}
    assert peer.loud_packets() > 5 * 50


def test_nine_and_speech_leave_a_voicemail_whose_wav_holds_the_callers_voice(
        office: Office, peer: RtpPeer, tmp_path: Path) -> None:
    scenario = gateway_call(tmp_path / "vm.xml", rtp_port=peer.port, caller="13900000001",
                            steps=(("their_bye", "90000"),))
    proc = office.call(scenario)
    wait_until(lambda: gathering(office.agent), timeout=40)
    peer.press("9")
    recording = wait_until(lambda: next((r.recording for r in office.agent.runs.values()  # type: ignore[attr-defined]
                                         if r.recording is not None and r.recording.started), None),
                           timeout=30)
    peer.speak()  # seven seconds of sip-tester's recorded speech, A-law
    peer.press("#")  # "说完请按任意键"
    finish(proc, timeout=90)
    ticket = tickets.open_ticket_of(office.hl, RESIDENT)
    assert ticket is not None and ticket.category == "voicemail"
    assert ticket.recording_url.endswith(f"/recordings/{recording.sid}.wav")
    kept = office.hl.settings.data_dir / "recordings" / f"{recording.sid}.wav"
    with wave.open(str(kept)) as wav:
        seconds = wav.getnframes() / wav.getframerate()
    assert 6.0 <= seconds <= 12.0
    assert sox_rms(kept) > 0.02  # the caller's voice, not silence
    # A caller's voice is behind the login wall.
    anonymous = requests.get(ticket.recording_url, timeout=5, allow_redirects=False)
    assert anonymous.status_code in (302, 401)


def sox_rms(path: Path) -> float:
    sox = require_tool("sox", "sox")
    out = subprocess.run([sox, str(path), "-n", "stat"], capture_output=True, text=True,
                         check=True).stderr
    return float(next(line.split(":")[1] for line in out.splitlines()
                      if line.startswith("RMS     amplitude")))


def test_hanging_up_before_choosing_leaves_a_callback_ticket_for_the_asserted_caller(
        office: Office, peer: RtpPeer, tmp_path: Path) -> None:
    # The gateway names its SIM's line in From and the caller in P-Asserted-Identity, and SIPp
    # lets the first 200 OK go unanswered: the hotline must send it again until the ACK.
    scenario = gateway_call(tmp_path / "early.xml", rtp_port=peer.port, caller="goip-line1",
                            asserted="13900000001", ignore_first_200=True,
                            steps=(("pause", "3000"), ("bye", "")))
    proc = office.call(scenario)
    finish(proc)
    ticket = wait_until(lambda: tickets.open_ticket_of(office.hl, RESIDENT), timeout=10)
    assert ticket.category == "callback"
    log = (tmp_path / "sipp-messages.log").read_text(errors="replace")
    invite_oks = [m for m in log.split("----------------------------------------------- ")
                  if "SIP/2.0 200 OK" in m and "CSeq: 1 INVITE" in m and "received" in m]
    assert len(invite_oks) >= 2  # the 200 OK, and at least one retransmission


def test_a_caller_not_among_the_peers_gets_403_and_no_ticket(office: Office, tmp_path: Path) -> None:
    proc = office.call(Path(__file__).parent / "sipp" / "refused.xml", source="127.0.0.1")
    finish(proc)
    assert tickets.list_tickets(office.hl) == []
    assert list(office.agent.ended) == []  # type: ignore[attr-defined]


def test_with_the_web_down_the_caller_hears_kept_and_the_call_back_ticket_comes_once(
        office: Office, peer: RtpPeer, tmp_path: Path) -> None:
    office.web.down()
    scenario = gateway_call(tmp_path / "down.xml", rtp_port=peer.port, caller="13900000001",
                            steps=(("their_bye", "40000"),))
    finish(office.call(scenario), timeout=60)  # the kept-call prompt, then the hotline hangs up
    assert peer.loud_packets() > 3 * 50  # "您的来电已记下，我们会尽快给您回电……"
    assert tickets.list_tickets(office.hl) == []
    assert spool.pending(office.hl.settings.data_dir / "sip")
    office.web.up()
    ticket = wait_until(lambda: tickets.open_ticket_of(office.hl, RESIDENT), timeout=15)
    assert ticket.category == "callback"
    wait_until(lambda: not spool.pending(office.hl.settings.data_dir / "sip"), timeout=10)
    office.agent.replay()  # type: ignore[attr-defined]
    assert len(tickets.list_tickets(office.hl)) == 1


def unfinished_calls(log: str) -> str:
    """The agents' log lines of the calls that never ended (all of it if every call ended)."""
    sids = {line.split("SIP call ")[1][:6] for line in log.splitlines() if "SIP call " in line}
    ended = {sid for sid in sids if f"SIP call {sid} ended" in log}
    lines = [line for line in log.splitlines()
             if any(f"SIP call {sid}" in line for sid in sids - ended) or "Traceback" in line
             or line.startswith(("  ", "pjsua", "Error"))]
    return "\n".join(lines[-120:]) if sids - ended else log[-6000:]


def clean_audio(peer: RtpPeer) -> tuple[int, int]:
    """Packets lost (sequence numbers missing) and media clock breaks (an RTP timestamp not 160
    after the one before). How steadily they came is a figure of `make bench` (its longest
    silence on the wire), not a test's: the machine may be busy."""
    heard = peer.audio()
    lost = sum(((b.seq - a.seq) & 0xFFFF) - 1 for a, b in itertools.pairwise(heard))
    breaks = sum(1 for a, b in itertools.pairwise(heard)
                 if (b.timestamp - a.timestamp) & 0xFFFFFFFF != 160 * ((b.seq - a.seq) & 0xFFFF))
    return lost, breaks


def gathers(log: Path, caller: str) -> int:
    """How many <Gather>s the agent has begun (their prompt playing) in `caller`'s call, from
    its DEBUG log: the moment to press a key, however slow the machine is."""
    text = log.read_text(errors="replace")
    found = re.search(rf"SIP call (\w{{6}}) from \+86 {caller[3:6]}\*+{caller[-4:]}", text)
    return text.count(f"SIP call {found.group(1)}: Gather") if found else 0


def press_in_each_menu(log: Path, caller: str, peer: RtpPeer, keys: str) -> None:
    """A line's caller: each key a second into the prompt of the next <Gather> (barge-in)."""
    for n, key in enumerate(keys, 1):
        wait_until(lambda n=n: gathers(log, caller) >= n, timeout=120, every=0.3)  # type: ignore[misc]
        time.sleep(1.0)
        peer.press(key)


def test_eight_calls_at_once_over_two_addresses_each_make_their_ticket_with_clean_audio(
        sample: Hotline, tmp_path: Path) -> None:
    # An 8-port gateway configured by line: lines 1-4 send to one address, 5-8 to the other
    # (pjsua takes 4 calls per process); `hotline sip` runs an engine process for each.
    sipp = require_tool("sipp", "sip-tester")
    web_port = free_port_tcp()
    settings = sample.settings.with_overrides(public_url=f"http://127.0.0.1:{web_port}")
    web = Web(settings, sample.url, web_port)
    web.up()
    ports = [free_port(), free_port()]
    rtp = free_range(40)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOTLINE_", "TWILIO_"))}
    env.update({"REDIS_URL": sample.url, "HOTLINE_DATA_DIR": str(settings.data_dir),
                "HOTLINE_PUBLIC_URL": settings.public_url,
                "TWILIO_AUTH_TOKEN": settings.webhook_token(), "HOTLINE_SMS_CHANNEL": "outbox",
                "HOTLINE_SIP_LISTEN": ",".join(f"127.0.0.1:{p}" for p in ports),
                "HOTLINE_SIP_PEERS": GATEWAY, "HOTLINE_SIP_RTP_PORTS": f"{rtp}-{rtp + 39}",
                "HOTLINE_LOG_LEVEL": "DEBUG"})  # each verb: when to press; and shown if a call fails
    callers = [f"+8613700{i:06d}" for i in range(8)]
    log = tmp_path / "sip.log"
    with open(log, "wb") as log_file:
        agents = subprocess.Popen([sys.executable, "-m", "gateway.cli", "sip"], env=env,
                                  start_new_session=True, stdout=subprocess.DEVNULL, stderr=log_file)
    peers = [RtpPeer() for _ in callers]
    try:
        wait_until(lambda: log.read_text().count("SIP agent on") == 2, timeout=30)
        procs, pressers = [], []
        for i, (caller, peer) in enumerate(zip(callers, peers, strict=True)):
            # The BYE guard only catches a call that never ends: one call alone takes ~50 s,
            # eight at once took ~150 s beside two burners (every prompt is new to this test's
            # agents, so the first calls wait for its voice as well as hear it).
            scenario = gateway_call(tmp_path / f"line{i}.xml", rtp_port=peer.port,
                                    caller=caller.removeprefix("+86"),
                                    steps=(("their_bye", "300000"),))
            procs.append(subprocess.Popen(
                [sipp, "-sf", str(scenario), "-i", GATEWAY, "-p", str(free_port()),
                 "-mp", str(free_port()), "-m", "1", "-s", "12345", "-nostdin",
                 f"127.0.0.1:{ports[i // 4]}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
            pressers.append(threading.Thread(target=press_in_each_menu,
                                             args=(log, caller, peer, "11"), daemon=True))
            pressers[-1].start()
        try:
            for proc in procs:
                finish(proc, timeout=360)
        except AssertionError as failed:
            raise AssertionError(f"{failed}\n--- what the agents did ---\n"
                                 f"{unfinished_calls(log.read_text())}") from None
        for caller, peer in zip(callers, peers, strict=True):
            ticket = tickets.open_ticket_of(sample, caller)
            assert ticket is not None and (ticket.category, ticket.channel) == ("medicine", "voice")
            assert {len(h.payload) for h in peer.audio()} == {160}
            assert clean_audio(peer) == (0, 0), caller
            assert peer.loud_packets() > 5 * 50
        assert log.read_text().count("(4 calls at once)") == 2
    finally:
        os.killpg(agents.pid, signal.SIGTERM)
        agents.wait(timeout=20)
        for peer in peers:
            peer.close()
        web.down()


def test_an_engine_that_dies_is_started_again_and_the_other_addresses_engine_goes_on(
        sample: Hotline, tmp_path: Path) -> None:
    # A crash in one engine (here a SIGKILL) must not end the calls on the other address.
    ports = [free_port(), free_port()]
    rtp = free_range(20)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOTLINE_", "TWILIO_"))}
    env.update({"REDIS_URL": sample.url, "HOTLINE_DATA_DIR": str(sample.settings.data_dir),
                "HOTLINE_PUBLIC_URL": "http://127.0.0.1:9", "HOTLINE_SMS_CHANNEL": "outbox",
                "HOTLINE_SIP_LISTEN": ",".join(f"127.0.0.1:{p}" for p in ports),
                "HOTLINE_SIP_PEERS": GATEWAY, "HOTLINE_SIP_RTP_PORTS": f"{rtp}-{rtp + 19}"})
    log = tmp_path / "sip.log"
    with open(log, "wb") as log_file:
        supervisor = subprocess.Popen([sys.executable, "-m", "gateway.cli", "sip"], env=env,
                                      start_new_session=True, stdout=subprocess.DEVNULL,
                                      stderr=log_file)

    def engines() -> list[int]:
        children = Path(f"/proc/{supervisor.pid}/task/{supervisor.pid}/children").read_text()
        return [int(pid) for pid in children.split()]

    try:
        wait_until(lambda: log.read_text().count("SIP agent on") == 2, timeout=60)
        first, second = engines()
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: log.read_text().count("SIP agent on") == 3, timeout=60)
        assert "process 1 stopped (signal 9); starting it again" in log.read_text()
        now = engines()
        assert second in now and first not in now and len(now) == 2  # the other never stopped
        assert supervisor.poll() is None
    finally:
        os.killpg(supervisor.pid, signal.SIGTERM)
        supervisor.wait(timeout=30)


def test_a_head_records_a_prompt_by_phone_over_sip_and_bateer_then_hears_it(
        office: Office, peer: RtpPeer, tmp_path: Path) -> None:
    from gateway import accounts, prompts
    from tests.conftest import PASSWORD, drain
    from workers import runtime

    hl = office.hl
    accounts.create(hl, "bai", "head", PASSWORD, "团结村")
    accounts.set_recorder(hl, "bai", "+8613800000041", "482915")
    played: list[Path] = []
    agent: Any = office.agent
    play = agent._play

    def spy(run: object, clips: tuple[Any, ...], then: object) -> None:
        played.extend(clip.path for clip in clips)
        play(run, clips, then)

    agent._play = spy
    proc = office.call(gateway_call(tmp_path / "rec.xml", rtp_port=peer.port, caller="13800000041",
                                    steps=(("their_bye", "150000"),)))

    def next_gather(after: int, caller: str = "13800000041") -> int:
        def asking() -> Any:
            return next((run for run in list(agent.runs.values()) if caller in run.fields.caller
                         and run.gather is not None and run.clip_until is not None
                         and run.epoch > after), None)
        return int(wait_until(asking, timeout=40).epoch)

    def recording_starts() -> Any:
        return wait_until(lambda: next((r.recording for r in agent.runs.values()
                                        if r.recording is not None and r.recording.started), None),
                          timeout=40)

    menu = next_gather(0)
    peer.press("#")
    pin = next_gather(menu)
    for digit in "482915":  # one by one, as a keypad sends them
        peer.press(digit)
    pick = next_gather(pin)
    peer.press("2")  # Mongolian
    take = recording_starts()
    peer.speak()
    peer.press("#")
    check = next_gather(pick)
    assert agent.recordings / f"{take.sid}.wav" in played  # heard back from the agent's own copy
    peer.press("1")  # keep the greeting; the menu's words come next
    recording_starts()
    peer.speak()
    peer.press("#")
    next_gather(check)
    peer.press("#")  # done: goodbye and our BYE
    finish(proc, timeout=120)
    assert tickets.open_ticket_of(hl, "+8613800000041") is None
    runtime.use(hl)
    drain(hl)  # the worker stores the kept take from the copy the agent sent the web
    stored = prompts.find(hl.settings, "mn", "greeting", "团结村", local=True)
    assert stored is not None and stored.stored
    assert prompts.find(hl.settings, "mn", "menu", "团结村", local=True) is None  # not kept
    played.clear()
    his = RtpPeer()  # a phone of his own (a peer learns where the agent sends from)
    try:
        bateer = office.call(gateway_call(tmp_path / "bateer.xml", rtp_port=his.port,
                                          caller="13900000004", steps=(("their_bye", "90000"),)))
        asked = next_gather(0, "13900000004")
        his.press("1")
        next_gather(asked, "13900000004")
        his.press("1")
        finish(bateer, timeout=90)
    finally:
        his.close()
    assert stored.path.with_suffix(".wav") in played  # his village's Mongolian greeting, at 8 kHz
    ticket = tickets.open_ticket_of(hl, "+8613900000004")
    assert ticket is not None and ticket.category == "medicine"
