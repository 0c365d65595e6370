"""The gammu channel against the real gammu-smsd daemon (Debian's), its dummy phone and files backend."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from gateway import messages, tickets
from gateway.app import create_app
from gateway.channels import TransportError, get_channel
from gateway.channels.gammu.inbox import decode, read_inbox
from gateway.channels.gammu.transport import GammuChannel, follow_status, out_name
from gateway.channels.watch import Watcher
from gateway.context import Hotline
from tests.conftest import GRID_WORKER, LEADER, RESIDENT, VOLUNTEER, VOLUNTEER2, drain, require_tool
from workers import runtime

OUT_NAME = re.compile(r"^OUT[A-Z]\d{8}_\d{6}_00_\+\d+_m\d+\.txt$")


class Smsd:
    """gammu-smsd with `model = dummy` (the phone is a folder) and the files backend."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.phone = root / "phone"
        self.spool = root / "spool"
        self.log = root / "smsd.log"
        self.config = root / "smsdrc"
        for folder in ("inbox", "outbox", "sent", "error"):
            (self.spool / folder).mkdir(parents=True, exist_ok=True)
        self.phone.mkdir(exist_ok=True)
        self.config.write_text(f"""[gammu]
model = dummy
connection = none
device = {self.phone}

[smsd]
service = files
logfile = {self.log}
debuglevel = 1
inboxpath = {self.spool}/inbox/
outboxpath = {self.spool}/outbox/
sentsmspath = {self.spool}/sent/
errorsmspath = {self.spool}/error/
inboxformat = unicode
outboxformat = unicode
transmitformat = auto
commtimeout = 1
receivefrequency = 1
loopsleep = 1
statusfrequency = 0
checksecurity = 0
checkbattery = 0
checksignal = 0
checknetwork = 0
hangupcalls = 1
runonincomingcall = /bin/true
""", encoding="utf-8")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Smsd:
        self.process = subprocess.Popen(["gammu-smsd", "-c", str(self.config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def stop(self) -> None:
        """The modem goes away: gammu-smsd is not there to send anything."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=10)
        self.process = None

    def receive(self, sender: str, text: str) -> None:
        """A text reaches the modem's SIM (the dummy phone's inbox folder), in as many parts as it takes."""
        subprocess.run(["gammu", "-c", str(self.config), "savesms", "TEXT", "-folder", "1",
                        "-sender", sender, "-unicode", "-len", str(len(text)), "-text", text],
                       check=True, capture_output=True, timeout=20)

    def transmitted(self, name: str) -> int:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return len(re.findall(rf"Transmitted {re.escape(name)} \(total", text))


def wait_for(check: Callable[[], object], timeout: float = 15, step: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(step)


@pytest.fixture
def smsd(tmp_path: Path) -> Iterator[Smsd]:
    require_tool("gammu-smsd", "gammu-smsd")
    require_tool("gammu", "gammu")
    daemon = Smsd(tmp_path / "gammu")
    yield daemon
    daemon.stop()


@pytest.fixture
def ghl(sample: Hotline, smsd: Smsd) -> Hotline:
    hotline = Hotline(sample.settings.with_overrides(sms_channel="gammu", gammu_spool=smsd.spool),
                      url=sample.url)
    runtime.use(hotline)
    return hotline


def outbox_files(smsd: Smsd) -> list[str]:
    return sorted(p.name for p in (smsd.spool / "outbox").iterdir())


def test_messages_are_handed_over_atomically_in_gammus_naming_and_encoding(
        ghl: Hotline, smsd: Smsd) -> None:
    m = messages.queue_sms(ghl, VOLUNTEER, "求助#1001：联合村第一网格送药。回复\"接 1001\"接单",
                           kind="offer")
    channel = GammuChannel(ghl)
    receipt = channel.send(m)
    assert outbox_files(smsd) == [receipt.provider_id] == [out_name(m)]
    assert OUT_NAME.match(receipt.provider_id) and receipt.provider_id.startswith("OUTB")
    data = (smsd.spool / "outbox" / receipt.provider_id).read_bytes()
    assert data[:2] == b"\xfe\xff" and data[2:].decode("utf-16-be") == m.body
    assert channel.send(m) == receipt and outbox_files(smsd) == [receipt.provider_id]  # a retry
    assert channel.lookup(m) == receipt
    notice = messages.queue_sms(ghl, LEADER, "通知", kind="notice")
    assert channel.send(notice).provider_id.startswith("OUTD")  # a village notice waits its turn
    with pytest.raises(TransportError) as bad:
        channel.send(messages.queue_sms(ghl, "+86138_00;rm", "x", kind="offer"))
    assert bad.value.permanent
    (smsd.spool / "outbox").rename(smsd.spool / "elsewhere")
    with pytest.raises(TransportError) as away:
        channel.send(messages.queue_sms(ghl, GRID_WORKER, "x", kind="offer"))
    assert not away.value.permanent and away.value.code == "spool"


def test_gammu_smsd_picks_a_message_up_and_moves_it_to_sent(ghl: Hotline, smsd: Smsd) -> None:
    m = messages.queue_sms(ghl, VOLUNTEER, "您好，这是测试短信", kind="reply")
    drain(ghl)
    record = messages.get(ghl, m.id)
    assert record is not None and record.status == "sending" and record.channel == "gammu"
    smsd.start()
    wait_for(lambda: (smsd.spool / "sent" / record.provider_id).exists())
    assert follow_status(ghl) == 1
    sent = messages.get(ghl, m.id)
    assert sent is not None and sent.status == "sent"
    assert smsd.transmitted(record.provider_id) == 1 and outbox_files(smsd) == []


def test_a_half_written_file_a_killed_worker_left_is_cleared_after_a_minute(
        ghl: Hotline, smsd: Smsd) -> None:
    outbox = smsd.spool / "outbox"
    dead = outbox / ".OUTD20261203_150616_00_+8613800000004_m4.txt.18416.tmp"
    write(dead, b"\xfe\xff\x90\x1a", age=61)
    live = outbox / ".OUTB20261203_150617_00_+8613800000005_m5.txt.18417.tmp"
    write(live, b"\xfe\xff", age=1)  # another worker is writing it now
    follow_status(ghl)
    assert not dead.exists() and live.exists()


def write(path: Path, data: bytes, age: float = 10) -> None:
    path.write_bytes(data)
    then = time.time() - age
    os.utime(path, (then, then))


def test_inbox_parts_are_joined_decoded_and_cut_at_the_first_nul(ghl: Hotline, smsd: Smsd) -> None:
    inbox = smsd.spool / "inbox"
    padded = b"\xfe\xff" + "我要买药".encode("utf-16-be") + b"\x00" * 14  # as gammu 1.42 writes
    write(inbox / "IN20260301_090000_00_+8613900000001_00.txt", padded)
    second = b"\xfe\xff" + "和降压药".encode("utf-16-be") + b"\x00\x00"
    write(inbox / "IN20260301_090001_00_+8613700009999_01.txt", second)  # part 2, first on disk
    write(inbox / "IN20260301_090000_00_+8613700009999_00.txt",
          b"\xfe\xff" + "家里没有退烧药".encode("utf-16-be"))
    write(inbox / "IN20260301_090005_00_13900000005_00.txt", "停水了".encode() + b"\x00\x00")
    write(inbox / "IN20260301_090009_00_+8613900000004_00.txt", b"\xfe\xffabc", age=0)  # being written
    assert read_inbox(ghl) == 3
    bodies = {m.sender: m.body for m in messages.list_messages(ghl) if m.direction == "in"}
    assert bodies == {RESIDENT: "我要买药", "+8613700009999": "家里没有退烧药和降压药",
                      "+8613900000005": "停水了"}
    assert [p.name for p in inbox.iterdir()] == ["IN20260301_090009_00_+8613900000004_00.txt"]
    assert len(list((smsd.spool / "processed").iterdir())) == 4
    assert read_inbox(ghl) == 0  # nothing twice
    assert decode(b"\xff\xfe" + "好".encode("utf-16-le") + b"\x00\x00") == "好"
    assert decode("求助".encode("gb18030")) == "求助"


def test_an_outage_of_the_modem_loses_nothing_and_sends_each_message_once(
        ghl: Hotline, smsd: Smsd) -> None:
    client: FlaskClient = create_app(ghl.settings, url=ghl.url).test_client()
    queued = [messages.queue_sms(ghl, n, f"通知：今天下午两点接种疫苗{i}", kind="notice")
              for i, n in enumerate((LEADER, GRID_WORKER, VOLUNTEER))]
    drain(ghl)  # the modem is away: the messages wait in gammu's outbox
    names = outbox_files(smsd)
    assert len(names) == 3
    for name in names:
        then = time.time() - 3600
        os.utime(smsd.spool / "outbox" / name, (then, then))
    health = client.get("/healthz").get_json()["channels"]["gammu"]
    assert (health["state"], health["outbox"], health["sending"]) == ("stalled", 3, 3)
    smsd.start()
    wait_for(lambda: outbox_files(smsd) == [])
    follow_status(ghl)
    assert [messages.get(ghl, q.id).status for q in queued] == ["sent"] * 3  # type: ignore[union-attr]
    assert sorted(p.name for p in (smsd.spool / "sent").iterdir()) == sorted(names)
    assert [smsd.transmitted(n) for n in names] == [1, 1, 1]
    health = client.get("/healthz").get_json()["channels"]["gammu"]
    assert (health["state"], health["outbox"], health["sending"]) == ("ok", 0, 0)


def test_the_whole_loop_resident_to_volunteer_over_the_modem(ghl: Hotline, smsd: Smsd) -> None:
    """Twilio off: a long Chinese text opens a ticket, the team hears through the modem, one takes
    and closes it by reply, and every message is sent once."""
    smsd.start()

    def arrive(sender: str, text: str) -> None:
        before = len([m for m in messages.list_messages(ghl) if m.direction == "in"])
        smsd.receive(sender, text)
        wait_for(lambda: read_inbox(ghl, settle=0.3) or len(
            [m for m in messages.list_messages(ghl) if m.direction == "in"]) > before)
        drain(ghl)

    long_text = "老伴发烧三天了，家里的退烧药和降压药都吃完了，麻烦帮忙买一些送过来，谢谢！" * 2
    arrive(RESIDENT, long_text)  # 76 characters: two parts on the air, one text here
    [ticket] = tickets.list_tickets(ghl)
    [inbound] = [m for m in messages.list_messages(ghl) if m.direction == "in"]
    assert inbound.body == long_text and inbound.channel == "gammu"
    arrive(VOLUNTEER, f"接 {ticket.code}")
    taken = tickets.get(ghl, ticket.code)
    assert taken is not None and taken.accepted_by == VOLUNTEER
    arrive(VOLUNTEER, f"完成 {ticket.code}")
    closed = tickets.get(ghl, ticket.code)
    assert closed is not None and closed.status == "done"
    wait_for(lambda: outbox_files(smsd) == [], timeout=30)
    follow_status(ghl)
    out = [m for m in messages.list_messages(ghl) if m.direction == "out"]
    assert {m.to for m in out} >= {RESIDENT, VOLUNTEER, VOLUNTEER2, LEADER}
    assert all(m.status == "sent" and smsd.transmitted(m.provider_id) == 1 for m in out)
    assert any(f"#{ticket.code}" in m.body for m in out if m.to == VOLUNTEER2)


def test_the_worker_thread_and_the_run_on_receive_command_read_the_inbox(
        ghl: Hotline, smsd: Smsd, data_dir: Path) -> None:
    inbox = smsd.spool / "inbox"
    write(inbox / "IN20260301_090000_00_+8613900000001_00.txt",
          b"\xfe\xff" + "需要送菜".encode("utf-16-be"))
    watcher = Watcher(ghl, every=0.1)
    watcher.start()
    try:
        wait_for(lambda: tickets.list_tickets(ghl), timeout=5, step=0.05)
    finally:
        watcher.stop()
        watcher.join()
    # RunOnReceive appends the new file names; a just-written text is handled at once.
    write(inbox / "IN20260301_090100_00_+8613700009999_00.txt",
          b"\xfe\xff" + "我也需要送菜".encode("utf-16-be"), age=0)
    env = {**os.environ, "REDIS_URL": ghl.url, "HOTLINE_DATA_DIR": str(data_dir),
           "HOTLINE_SMS_CHANNEL": "gammu", "GAMMU_SPOOL": str(smsd.spool)}
    done = subprocess.run([sys.executable, "-m", "gateway.cli", "gammu", "poll",
                           "IN20260301_090100_00_+8613700009999_00.txt"],
                          env=env, text=True, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("1 new text(s)")
    assert len(tickets.list_tickets(ghl)) == 2 and list(inbox.iterdir()) == []


def test_the_channel_is_registered_by_name(ghl: Hotline) -> None:
    assert isinstance(get_channel(ghl), GammuChannel) and get_channel(ghl).name == "gammu"
