"""The pool of senders: the file read strictly, today's settings as a pool of one, caps in Redis."""

from __future__ import annotations

import random
import threading
from datetime import time as clock_time
from itertools import pairwise
from pathlib import Path

import pytest

from gateway import caps, pacing, senders
from gateway.context import Hotline
from gateway.senders import Sender
from gateway.settings import ConfigError, Settings
from gateway.store import KEYS

THREE = """
[[sender]]
name = "lianhe-phone"
kind = "android"
url = "http://192.168.1.20:8080/"
user = "sms"
password_file = "lianhe.pass"
signing_key_file = "lianhe.key"
villages = ["联合村"]
rate = 1
per_hour = 100
per_day = 300
quiet = "22:00-07:00"

[[sender]]
name = "tuanjie-phone"
kind = "android"
url = "https://10.0.0.7:8443"
villages = ["团结村"]
towns = []
rate = 0.5
per_day = 200

[[sender]]
name = "outbox"
kind = "outbox"
standby = true
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "lianhe.pass").write_text("pa55word\n")
    (tmp_path / "lianhe.key").write_text("k3y\n")
    path = tmp_path / "senders.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_file_of_three_senders_is_read_with_their_villages_caps_and_secrets(tmp_path: Path) -> None:
    lianhe, tuanjie, outbox = senders.load(write(tmp_path, THREE))
    assert (lianhe.name, lianhe.kind, lianhe.villages) == ("lianhe-phone", "android", ("联合村",))
    assert lianhe.rate == 1.0
    assert (lianhe.per_hour, lianhe.per_day) == (100, 300)
    assert lianhe.quiet == (clock_time(22, 0), clock_time(7, 0))
    assert lianhe.connection == {"url": "http://192.168.1.20:8080", "user": "sms",
                                 "password_file": "pa55word", "signing_key_file": "k3y"}
    assert (tuanjie.per_hour, tuanjie.per_day, tuanjie.standby) == (None, 200, False)
    assert outbox.standby and outbox.kind == "outbox"
    assert lianhe.serves("联合村", "归流河镇") and not lianhe.serves("团结村", "归流河镇")


def test_a_senders_channel_is_built_from_its_own_connection(tmp_path: Path, settings: Settings) -> None:
    lianhe = senders.load(write(tmp_path, THREE))[0]
    own = lianhe.settings(settings)
    assert (own.sms_channel, own.sms_fallback, own.sms_rate) == ("android", None, 1.0)
    assert (own.android_gateway_url, own.android_gateway_user) == ("http://192.168.1.20:8080", "sms")
    assert (own.android_gateway_password, own.android_gateway_signing_key) == ("pa55word", "k3y")
    assert own.redis_url == settings.redis_url  # everything else is the hotline's


@pytest.mark.parametrize(("text", "words"), [
    ("[[sender]\nname=", "not TOML"),
    ("[other]\nx = 1\n", "unknown table 'other'"),
    ("", "no [[sender]]"),
    ('[[sender]]\nname = "Bad Name"\nkind = "outbox"\n', "name must be"),
    ('[[sender]]\nname = "a"\nkind = "pigeon"\n', "kind must be one of"),
    ('[[sender]]\nname = "a"\nkind = "android"\n', "needs 'url'"),
    ('[[sender]]\nname = "a"\nkind = "android"\nurl = "192.168.1.2"\n', "must start with http"),
    ('[[sender]]\nname = "a"\nkind = "outbox"\nurl = "http://x"\n', "unknown key 'url'"),
    ('[[sender]]\nname = "a"\nkind = "outbox"\nper_hour = 0\n', "per_hour must be a whole number"),
    ('[[sender]]\nname = "a"\nkind = "outbox"\nper_day = 2.5\n', "per_day must be a whole number"),
    ('[[sender]]\nname = "a"\nkind = "outbox"\nrate = -1\n', "rate must be a number"),
    ('[[sender]]\nname = "a"\nkind = "outbox"\nquiet = "22-07"\n', "quiet must be like"),
    ('[[sender]]\nname = "a"\nkind = "outbox"\nquiet = "07:00-07:00"\n', "starts where it ends"),
    ('[[sender]]\nname = "a"\nkind = "outbox"\nvillages = "联合村"\n', "villages must be a list"),
    ('[[sender]]\nname = "a"\nkind = "outbox"\nstandby = true\n', "every sender is on standby"),
    ('[[sender]]\nname = "a"\nkind = "outbox"\n[[sender]]\nname = "a"\nkind = "outbox"\n', "two senders"),
    ('[[sender]]\nname = "a"\nkind = "android"\nurl = "http://x"\npassword_file = "missing"\n',
     "cannot read password_file"),
])
def test_a_wrong_file_is_refused_with_one_line_naming_what_to_fix(
        tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(ConfigError) as refused:
        senders.load(write(tmp_path, text))
    assert words in str(refused.value) and str(refused.value).startswith("HOTLINE_CHANNELS_FILE")


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        senders.load(tmp_path / "nowhere.toml")


def test_without_the_file_todays_settings_are_a_pool_of_one_with_the_fallback_on_standby(
        settings: Settings) -> None:
    assert senders.configured(settings, None) == (Sender("outbox", "outbox", rate=0.0),)
    twin = settings.with_overrides(sms_channel="twilio", sms_fallback="outbox", sms_rate=1.0)
    main, spare = senders.pool_of_one(twin)
    assert (main.kind, main.standby, spare.kind, spare.standby) == ("twilio", False, "outbox", True)


def test_quiet_hours_may_span_midnight() -> None:
    night = Sender("a", "outbox", quiet=(clock_time(22, 0), clock_time(7, 0)))
    assert night.is_quiet(clock_time(23, 30)) and night.is_quiet(clock_time(6, 59))
    assert not night.is_quiet(clock_time(7, 0)) and not night.is_quiet(clock_time(12, 0))
    lunch = Sender("b", "outbox", quiet=(clock_time(12, 0), clock_time(14, 0)))
    assert lunch.is_quiet(clock_time(13, 0)) and not lunch.is_quiet(clock_time(14, 0))


# Caps are counted over sliding windows; the tests shorten the hour (and make the day a minute,
# longer than any test, so that a slow machine never lets a day pass mid-test).
def short(hl: Hotline) -> Hotline:
    return hl.with_settings(hl.settings.with_overrides(cap_hour=1.0, cap_day=60.0))


def take(hl: Hotline, sender: Sender, member: str, *, bulk: bool = False) -> caps.Booking:
    """A send counted against the sender's caps (unpaced: only the caps decide its turn)."""
    return caps.book(hl, sender, member, pace=sender.name, rate=0.0, bulk=bulk)


def test_a_sender_full_for_the_hour_books_the_next_send_when_it_has_room_again(hl: Hotline) -> None:
    hl = short(hl)
    card = Sender("card", "outbox", per_hour=3, per_day=5, reserve=0)
    # Bounded by the server's clock read before and after, never by how long the calls took.
    before = pacing.server_now(hl)
    slots = [take(hl, card, f"m{i}").slot for i in range(3)]
    assert all(s is not None and before <= s <= pacing.server_now(hl) for s in slots)
    first = min(score for _, score in hl.r.zrange(KEYS.sent("card"), 0, -1, withscores=True))
    fourth = take(hl, card, "m3").slot
    # when the first of the three leaves the (counted) hour, not before
    assert fourth is not None and fourth > first + 1.0 + caps.margin(1.0)
    assert hl.r.zscore(KEYS.sent("card"), "m3") == pytest.approx(fourth)  # counted at its turn
    assert caps.counts(hl, card)["day"] == 4
    assert take(hl, card, "m3").slot is not None  # a retry of a counted send: not twice
    assert caps.counts(hl, card)["day"] == 4


def test_the_day_cap_holds_after_the_hour_has_room(hl: Hotline) -> None:
    hl = short(hl)
    card = Sender("card", "outbox", per_hour=2, per_day=3, reserve=0)
    assert all(take(hl, card, f"m{i}").slot is not None for i in range(3))  # the third: next hour
    held = take(hl, card, "m3")  # the "day" (a minute here) is full: its room is far off
    assert held.slot is None and held.full and held.wait > caps.WITHIN
    assert caps.counts(hl, card)["day"] == 3


def test_notices_leave_part_of_each_cap_to_the_help_texts(hl: Hotline) -> None:
    card = Sender("card", "outbox", per_hour=20)  # the default reserve: 5%, here one text
    assert card.kept(20) == 1 and card.kept(1) == 0 and Sender("x", "outbox", reserve=0.2).kept(20) == 4
    assert all(take(hl, card, f"n{i}", bulk=True).slot is not None for i in range(19))
    notice = take(hl, card, "n19", bulk=True)
    assert notice.slot is None and notice.full  # the twentieth is not a notice's
    assert take(hl, card, "offer1").slot is not None  # an offer has it
    assert take(hl, card, "offer2").slot is None and caps.counts(hl, card)["hour"] == 20


def test_no_cap_is_ever_exceeded_by_workers_racing(hl: Hotline) -> None:
    card = Sender("card", "outbox", per_hour=25)
    taken: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        own = Hotline(hl.settings, url=hl.url)  # a connection of its own, as a worker has
        for i in range(40):
            if take(own, card, f"w{n}-{i}", bulk=i % 2 == 0).slot is not None:
                with lock:
                    taken.append(f"w{n}-{i}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(taken) == 25 and caps.counts(hl, card)["hour"] == 25


def test_offers_taking_notices_turns_never_break_the_rate_or_a_cap(hl: Hotline) -> None:
    # Notices and offers booked in a random mix (some for the soonest room however far off):
    # whatever the lanes did, the booked turns are one interval apart and no window is over.
    hl = hl.with_settings(hl.settings.with_overrides(cap_hour=2.0, cap_day=60.0))
    card = Sender("card", "outbox", per_hour=12, per_day=40, reserve=0.25)
    gap = pacing.interval(20.0)
    pick = random.Random(7)
    for i in range(160):
        caps.book(hl, card, f"m{i}", pace="card", rate=20.0, later=pick.random() < 0.3,
                  bulk=pick.random() < 0.7)
    turns = sorted(t for _, t in hl.r.zrange(KEYS.sent("card"), 0, -1, withscores=True))
    assert len(turns) > 40
    assert min(b - a for a, b in pairwise(turns)) >= gap - 1e-6
    for window, most in ((2.0, 12), (60.0, 40)):
        counted = window + caps.margin(window)
        assert max(sum(1 for t in turns if end - counted < t <= end) for end in turns) <= most


def test_a_sender_without_caps_is_never_held(hl: Hotline) -> None:
    free = Sender("free", "outbox")
    assert all(take(hl, free, f"m{i}", bulk=i % 2 == 0).slot is not None for i in range(50))


def test_the_example_file_in_deploy_loads(tmp_path: Path) -> None:
    example = Path(__file__).parent.parent / "deploy" / "channels.example.toml"
    copy = tmp_path / "channels.toml"
    copy.write_text(example.read_text(encoding="utf-8"), encoding="utf-8")
    for secret in ("lianhe.password", "lianhe.signing-key", "tuanjie.password",
                   "tuanjie.signing-key"):
        (tmp_path / secret).write_text("s3cret\n")
    pool = senders.load(copy)
    assert [(s.name, s.kind, s.villages or s.towns) for s in pool] == [
        ("lianhe", "android", ("联合村",)), ("tuanjie", "android", ("团结村",)),
        ("town-modem", "gammu", ("归流河镇",))]
    assert pool[0].connection["password_file"] == "s3cret" and pool[0].per_day == 300
