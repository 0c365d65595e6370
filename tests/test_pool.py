"""A pool of senders (HOTLINE_CHANNELS_FILE): two village phones and a standby outbox, end to end.

The phones are the fake SMS Gateway for Android (tests/fake_android.py), each with its own
password and signing key; messages go through a real worker (`hotline worker --burst`).
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import caps, messages, notices, pacing, registry
from gateway.app import create_app
from gateway.channels.health import report
from gateway.context import Hotline
from gateway.outage import Gate
from tests.fake_android import FakePhone, LiveApp, run_due
from tests.fake_twilio import FROM_NUMBER, FakeTwilio, start_worker, stop_workers, wait_until
from workers import runtime

LIANHE, TUANJIE = "联合村", "团结村"


@pytest.fixture
def phones() -> Iterator[dict[str, FakePhone]]:
    started = {"lianhe": FakePhone(password="lianhe-pw", signing_key="lianhe-key"),
               "tuanjie": FakePhone(password="tuanjie-pw", signing_key="tuanjie-key")}
    for phone in started.values():
        phone.start()
    yield started
    for phone in started.values():
        phone.stop()


def pool_file(folder: Path, phones: dict[str, FakePhone], *, lianhe: str = "",
              tuanjie: str = "", standby: bool = True, rate: float = 50) -> Path:
    """A channels file: the two phones (each serving its village first) and the outbox."""
    villages = {"lianhe": LIANHE, "tuanjie": TUANJIE}
    extra = {"lianhe": lianhe, "tuanjie": tuanjie}
    tables = []
    for name, phone in phones.items():
        (folder / f"{name}.password").write_text(phone.password + "\n")
        (folder / f"{name}.key").write_text(phone.signing_key + "\n")
        tables.append(f'[[sender]]\nname = "{name}"\nkind = "android"\nurl = "{phone.url}"\n'
                      f'user = "{phone.user}"\npassword_file = "{name}.password"\n'
                      f'signing_key_file = "{name}.key"\npoll = 0\n'
                      f'villages = ["{villages[name]}"]\nrate = {rate}\n{extra[name]}\n')
    if standby:
        tables.append('[[sender]]\nname = "spare"\nkind = "outbox"\nstandby = true\n')
    path = folder / "channels.toml"
    path.write_text("\n".join(tables), encoding="utf-8")
    return path


def use(hl: Hotline, path: Path, **changes: object) -> Hotline:
    hotline = Hotline(hl.settings.with_overrides(channels_file=path, **changes), url=hl.url)
    runtime.use(hotline)
    return hotline


def notice_to(hl: Hotline, village: str, body: str) -> list[messages.Message]:
    found = registry.find_village(hl.r, village)
    assert found is not None
    notice = notices.create(hl, found.id, body)
    assert notices.send(hl, notice.id, "all") > 0  # the village's team and its residents
    queued = [messages.get(hl, mid) for mid in notices.deliveries(hl, notice.id).values()]
    return [m for m in queued if m is not None]


def carried(hl: Hotline, queued: list[messages.Message]) -> Counter[str]:
    """Which sender carried how many of `queued` (their records as they are now)."""
    records = [messages.get(hl, m.id) for m in queued]
    return Counter(r.channel for r in records if r is not None and r.provider_id)


def not_carried(hl: Hotline, queued: list[messages.Message]) -> str:
    """The records of `queued` no sender carried yet: what a failed wait shows."""
    records = [messages.get(hl, m.id) for m in queued]
    return "\n".join(f"{r.id} {r.status} via={r.channel} attempts={r.attempts} waiting={r.waiting!r}"
                     for r in records if r is not None and not r.provider_id)


def listening(folder: Path) -> int:
    """How many of the workers logging into `folder` have said they listen on the queue."""
    return sum("Listening on" in log.read_text(errors="replace")
               for log in folder.glob("worker-*.log"))


def drain_until(hl: Hotline, done: object, timeout: float) -> None:
    """Run due jobs (as `hotline worker --burst` would) until `done()` or the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run_due(hl)
        if done():  # type: ignore[operator]
            return
        time.sleep(0.1)


def test_a_notice_to_two_villages_goes_out_through_each_villages_own_phone(
        sample: Hotline, phones: dict[str, FakePhone], tmp_path: Path) -> None:
    hl = use(sample, pool_file(tmp_path, phones))
    lianhe = notice_to(hl, LIANHE, "明天上午9点在村委会打疫苗。")
    tuanjie = notice_to(hl, TUANJIE, "明天下午停水两小时。")
    run_due(hl)
    assert carried(hl, lianhe) == {"lianhe": len(lianhe)}
    assert carried(hl, tuanjie) == {"tuanjie": len(tuanjie)}
    assert len(phones["lianhe"].accepted) == len(lianhe) and phones["lianhe"].problems == []
    assert len(phones["tuanjie"].accepted) == len(tuanjie)
    health = report(hl)  # sends are counted for every sender, capped or not
    assert (health["lianhe"]["sent_this_hour"], health["tuanjie"]["sent_today"]) == (
        len(lianhe), len(tuanjie))
    assert health["spare"]["sent_this_hour"] == 0  # the standby was not needed


def test_a_full_phone_passes_the_rest_to_the_other_then_the_standby_never_past_a_cap(
        sample: Hotline, phones: dict[str, FakePhone], tmp_path: Path) -> None:
    hl = use(sample, pool_file(tmp_path, phones, lianhe="per_hour = 3", tuanjie="per_hour = 2"))
    queued = notice_to(hl, LIANHE, "明天上午9点在村委会打疫苗。")
    assert len(queued) > 5
    run_due(hl)
    # a notice leaves one text of each cap (the default 5%, at least one) to the help texts
    assert carried(hl, queued) == {"lianhe": 2, "tuanjie": 1, "spare": len(queued) - 3}
    assert (len(phones["lianhe"].accepted), len(phones["tuanjie"].accepted)) == (2, 1)
    health = report(hl)
    assert (health["lianhe"]["state"], health["lianhe"]["sent_this_hour"]) == (
        "full for notices: 2 this hour", 2)
    offer = messages.queue_sms(hl, queued[0].to, "新求助 H1：药品。回复 接 认领。", kind="offer")
    run_due(hl)
    assert messages.get(hl, offer.id).channel == "lianhe"  # type: ignore[union-attr]
    assert report(hl)["lianhe"]["state"] == "full: 3 this hour"


def test_an_offer_goes_ahead_of_a_notice_queued_before_it_on_the_same_phone(
        sample: Hotline, phones: dict[str, FakePhone], tmp_path: Path) -> None:
    phone = phones["lianhe"]
    hl = use(sample, pool_file(tmp_path, {"lianhe": phone}, rate=2, standby=False))
    queued = notice_to(hl, LIANHE, "明天上午9点在村委会打疫苗。")  # 9 texts: 4 s of turns at 2/s
    run_due(hl)  # the first went; each of the others booked its turn and waits for it
    offer = messages.queue_sms(hl, "+8613800000099", "新求助 H1：药品。回复 接 认领。", kind="offer")
    everyone = [*queued, offer]
    drain_until(hl, lambda: sum(carried(hl, everyone).values()) == len(everyone), timeout=60)
    order = [body["phoneNumbers"][0] for body in phone.accepted.values()]  # in arrival order
    assert sorted(order) == sorted(m.to for m in everyone), not_carried(hl, everyone)  # each once
    # It took the turn of the first notice text still ahead (that one went at the end), not
    # the last place in the line.
    assert order.index(offer.to) <= 4, order
    assert max(sum(1 for t in phone.arrived if start <= t < start + 1.0)
               for start in phone.arrived) <= 2  # the phone's rate held all the same


def test_when_every_sender_is_full_a_message_waits_saying_why_and_goes_when_there_is_room(
        sample: Hotline, phones: dict[str, FakePhone], tmp_path: Path) -> None:
    # The hour is ten seconds here; the phones' caps (3 and 2, one of each kept for the help
    # texts) hold 3 of 联合村's notice texts each window.
    hl = use(sample, pool_file(tmp_path, phones, lianhe="per_hour = 3", tuanjie="per_hour = 2",
                               standby=False), cap_hour=10.0)
    queued = notice_to(hl, LIANHE, "明天上午9点在村委会打疫苗。")
    run_due(hl)
    waiting = [m for m in (messages.get(hl, q.id) for q in queued) if m and not m.provider_id]
    assert len(waiting) == len(queued) - 3
    # Each says why: both phones at their caps (or already booked far ahead past them), or
    # its turn, booked past the caps, on one of them.
    why = re.compile(r"lianhe (at its cap|busy); tuanjie (at its cap|busy)\Z"
                     r"|its turn on (lianhe|tuanjie) at \d\d:\d\d:\d\d\Z")
    assert all(why.match(m.waiting) for m in waiting), [m.waiting for m in waiting]
    assert any("at its cap" in m.waiting for m in waiting)
    health = report(hl)  # each booked for the soonest turn with room, on one of the two
    assert health["lianhe"]["queued"] + health["tuanjie"]["queued"] == len(waiting)
    drain_until(hl, lambda: sum(carried(hl, queued).values()) == len(queued), timeout=60)
    assert sum(carried(hl, queued).values()) == len(queued)
    for name, most in (("lianhe", 3), ("tuanjie", 2)):
        phone = phones[name]
        assert len(set(phone.accepted)) == len(phone.accepted)  # each message once
        # Measured where a carrier counts, on arrival: never more than the cap in any hour.
        arrived = sorted(phone.arrived)
        assert max(sum(1 for t in arrived if start <= t < start + 10.0) for start in arrived) <= most
    assert all(m is not None and not m.waiting
               for m in (messages.get(hl, q.id) for q in queued))


def test_a_failing_phones_messages_go_through_the_others_and_it_is_used_again_when_back(
        sample: Hotline, phones: dict[str, FakePhone], tmp_path: Path) -> None:
    hl = use(sample, pool_file(tmp_path, phones), retry_first=1, retry_max=1)
    phones["lianhe"].stop()
    first = notice_to(hl, LIANHE, "明天上午9点在村委会打疫苗。")
    run_due(hl)
    assert carried(hl, first) == {"tuanjie": len(first)}  # the village's phone is away
    health = report(hl)
    assert health["lianhe"]["state"].startswith("failing") and health["lianhe"]["last_error"]
    phones["lianhe"].start()
    time.sleep(1.1)  # the backoff: the next text routed to it tries it again
    second = notice_to(hl, LIANHE, "通知：后天上午继续接种。")
    run_due(hl)
    assert carried(hl, second) == {"lianhe": len(second)}
    assert Gate(hl, "lianhe").probe() is None and report(hl)["lianhe"]["state"] == "ok"


def test_when_every_phone_is_down_the_texts_wait_for_the_first_back(
        sample: Hotline, phones: dict[str, FakePhone], tmp_path: Path) -> None:
    hl = use(sample, pool_file(tmp_path, phones, standby=False), retry_first=1, retry_max=1)
    for phone in phones.values():
        phone.stop()
    queued = notice_to(hl, TUANJIE, "明天下午停水两小时。")
    run_due(hl)
    assert carried(hl, queued) == {}
    assert sum(e["held"] for e in report(hl).values()) >= len(queued) - 2  # parked, not tried
    phones["lianhe"].start()  # the other village's phone comes back first: it carries them
    drain_until(hl, lambda: sum(carried(hl, queued).values()) == len(queued), timeout=30)
    assert carried(hl, queued) == {"lianhe": len(queued)}


def test_each_phone_posts_to_the_one_webhook_and_its_texts_are_answered_through_it(
        sample: Hotline, phones: dict[str, FakePhone], tmp_path: Path) -> None:
    hl = use(sample, pool_file(tmp_path, phones))
    live = LiveApp(create_app(hl.settings, url=hl.url)).start()
    try:
        hook = {"id": "in", "url": f"{live.url}/android/webhook", "event": "sms:received"}
        for phone in phones.values():
            phone.webhooks["in"] = hook
        # 巴特尔 lives in 团结村 but texts the number of 联合村's phone: the answer comes from it.
        phones["lianhe"].receive("+8613900000004", "需要买药")
        phones["lianhe"].wait_idle()
        run_due(hl)
        replies = [m for m in messages.list_messages(hl) if m.direction == "out"
                   and m.to == "+8613900000004"]
        assert [(m.kind, m.channel, m.via) for m in replies] == [("reply", "lianhe", "lianhe")]
        received = [m for m in messages.list_messages(hl) if m.direction == "in"]
        assert [m.channel for m in received] == ["lianhe"]
        forged = FakePhone(signing_key="not-ours", retries=1)
        forged.start()
        try:
            forged.webhooks["in"] = hook
            forged.receive("+8613900000004", "假的")
            forged.wait_idle()
            assert [a[1] for a in forged.attempts][-1] == 403
        finally:
            forged.stop()
    finally:
        live.stop()


def test_caps_are_booked_at_the_turn_the_send_goes(hl: Hotline) -> None:
    from gateway.senders import Sender

    card = Sender("card", "android", per_hour=2, rate=2.0)
    first = caps.book(hl, card, "m1:1", pace="card", rate=2.0)
    second = caps.book(hl, card, "m2:1", pace="card", rate=2.0)
    assert first.slot is not None and second.slot is not None
    assert second.slot - first.slot == pytest.approx(pacing.interval(2.0), abs=0.001)  # one interval on
    third = caps.book(hl, card, "m3:1", pace="card", rate=2.0)
    assert third.slot is None and 3600 < third.wait <= 3600 + caps.margin(3600) + 1
    assert caps.counts(hl, card)["hour"] == 2


def test_an_admin_sees_each_sender_on_the_dashboard_and_a_head_does_not(
        people: Hotline, phones: dict[str, FakePhone], tmp_path: Path) -> None:
    from tests.test_dashboard import login, text_of

    hl = use(people, pool_file(tmp_path, phones, lianhe="per_hour = 3"))
    queued = notice_to(hl, LIANHE, "明天上午9点在村委会打疫苗。")
    run_due(hl)
    assert carried(hl, queued)["lianhe"] == 2  # the third of its hour is kept for the help texts
    client = create_app(hl.settings, url=hl.url).test_client()
    assert login(client, "zhang").status_code == 302
    assert client.get("/senders").status_code == 404  # a village head does not run the phones
    client.post("/logout")
    admin = create_app(hl.settings, url=hl.url).test_client()
    assert login(admin, "admin").status_code == 302
    page = text_of(admin.get("/senders"))
    row = page[page.index('data-sender="lianhe"'):page.index('data-sender="tuanjie"')]
    assert "安卓手机" in row and "联合村" in row and "通知到上限了" in row and "2 / 3" in row
    spare = page[page.index('data-sender="spare"'):]
    assert "备用" in spare and "正常" in spare


def test_a_phone_a_real_modem_and_twilio_carry_a_notice_once_each_though_a_worker_is_killed(
        sample: Hotline, phones: dict[str, FakePhone], fake: FakeTwilio, tmp_path: Path) -> None:
    from tests.conftest import require_tool
    from tests.test_gammu import Smsd

    require_tool("gammu-smsd", "gammu-smsd")
    smsd = Smsd(tmp_path / "gammu").start()
    try:
        (tmp_path / "twilio.token").write_text(fake.auth_token)
        path = pool_file(tmp_path, {"lianhe": phones["lianhe"]}, lianhe="per_hour = 3",
                         standby=False)
        with open(path, "a", encoding="utf-8") as f:
            f.write(f'\n[[sender]]\nname = "town"\nkind = "gammu"\nspool = "{smsd.spool}"\n'
                    f'towns = ["归流河镇"]\nper_hour = 2\n'
                    f'\n[[sender]]\nname = "abroad"\nkind = "twilio"\n'
                    f'account_sid = "{fake.account_sid}"\nauth_token_file = "twilio.token"\n'
                    f'from_number = "{FROM_NUMBER}"\napi_base = "{fake.url}"\nstandby = true\n')
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HOTLINE_", "TWILIO_"))}
        env.update({"REDIS_URL": sample.url, "HOTLINE_DATA_DIR": str(sample.settings.data_dir),
                    "HOTLINE_CHANNELS_FILE": str(path), "HOTLINE_SWEEP_AFTER": "2",
                    "HOTLINE_RETRY_FIRST": "1", "HOTLINE_RETRY_MAX": "2"})
        hl = use(sample, path)
        first = start_worker(env, tmp_path)
        workers = [first]
        try:
            queued = notice_to(hl, LIANHE, "明天上午9点在村委会打疫苗。")
            wait_until(lambda: phones["lianhe"].arrived, timeout=30)
            os.killpg(first.pid, signal.SIGKILL)  # a power cut in the middle of the notice
            first.wait()
            workers.append(start_worker(env, tmp_path))
            wait_until(lambda: listening(tmp_path) == 2, timeout=60)  # the minute counts from here
            try:
                wait_until(lambda: sum(carried(hl, queued).values()) == len(queued), timeout=60)
            except AssertionError as late:
                raise AssertionError(f"{late}\n{not_carried(hl, queued)}") from None
            wait_until(lambda: not list((smsd.spool / "outbox").glob("OUT*")), timeout=30)
        finally:
            stop_workers(workers)
        by = carried(hl, queued)
        assert set(by) <= {"lianhe", "town", "abroad"} and by["abroad"] >= len(queued) - 5
        phone = phones["lianhe"]
        assert len(phone.arrived) == len(phone.accepted) == by["lianhe"] <= 3  # once each, capped
        sent = sorted(p.name for p in (smsd.spool / "sent").iterdir())
        assert len(sent) == by["town"] <= 2 and all(smsd.transmitted(n) == 1 for n in sent)
        to = fake.accepted_to()
        assert len(to) == len(set(to)) == by["abroad"] and fake.problems() == []
        assert sorted(m.to for m in queued) == sorted(
            [b["phoneNumbers"][0] for b in phone.accepted.values()] + to
            + [n.split("_")[3] for n in sent])  # everyone, by exactly one sender
    finally:
        smsd.stop()


def test_a_text_an_interrupted_attempt_left_at_a_full_phone_is_found_there_not_sent_again(
        sample: Hotline, phones: dict[str, FakePhone], tmp_path: Path) -> None:
    from gateway.channels import get_channel

    hl = use(sample, pool_file(tmp_path, phones, lianhe="per_hour = 1"))
    queued = messages.queue_sms(hl, "+8613800000003", "通知：明天接种。", kind="notice")
    get_channel(hl, "lianhe").send(queued)  # the phone took it; then the worker died
    messages.update(hl, queued.id, status="sending", attempts=1, channel="lianhe")
    caps.book(hl, hl.pool[0], f"{queued.id}:1", pace="lianhe", rate=0.0)  # its attempt counted:
    # the phone is full now
    run_due(hl)
    record = messages.get(hl, queued.id)
    assert record is not None and (record.channel, record.provider_id) == (
        "lianhe", next(iter(phones["lianhe"].accepted)))
    assert phones["tuanjie"].accepted == {} and report(hl)["spare"]["sent_this_hour"] == 0
