"""Notices as a village head uses them: made, sent through the workers once per person,
tracked, turned into calls for help that name no resident, and driven from the command line."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
import wave
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from gateway import broadcast, clock, messages, notices, tickets
from gateway.context import Hotline
from gateway.notices import NoticeError
from gateway.store import KEYS
from tests.conftest import (
    DUTY,
    GRID_WORKER,
    HEAD,
    LANDLINE_RESIDENT,
    LEADER,
    OTHER_GRID_LEADER,
    RESIDENT,
    VOLUNTEER,
    VOLUNTEER2,
    drain,
    post_twilio,
    require_tool,
)
from workers.notices import send_notice

VILLAGE_TEAM = {LEADER, GRID_WORKER, VOLUNTEER, VOLUNTEER2, OTHER_GRID_LEADER, "+8613800000012"}
VILLAGE_HEADS = {HEAD}
VILLAGE_RESIDENTS_WITH_MOBILE = {RESIDENT, "+8613900000003"}  # 王秀英, 张桂兰
TUANJIE = {"+8613800000031", "+8613800000032", "+8613800000041"}  # 团结村 team and head
RESIDENT_NAME, RESIDENT_ADDRESS = "王秀英", "联合村一组12号"


def vid(hl: Hotline, name: str = "联合村") -> str:
    from gateway import registry

    village = registry.find_village(hl.r, name)
    assert village is not None
    return village.id


def notice_sms(hl: Hotline) -> dict[str, list[messages.Message]]:
    """Every notice SMS recorded, by recipient."""
    out: dict[str, list[messages.Message]] = {}
    for m in messages.list_messages(hl, limit=1000):
        if m.kind == "notice":
            out.setdefault(m.to, []).append(m)
    return out


# --- making notices ------------------------------------------------------------------------

def test_a_notice_is_stored_for_its_village_and_listed_newest_first(sample: Hotline) -> None:
    first = notices.create(sample, vid(sample), "周六接种疫苗。请带身份证。", author="张志强")
    second = notices.create(sample, vid(sample), "停水通知", title="明天停水")
    other = notices.create(sample, vid(sample, "团结村"), "团结村的通知")
    assert first.title == "周六接种疫苗" and second.title == "明天停水"
    assert [n.id for n in notices.list_notices(sample, vid(sample))] == [second.id, first.id]
    assert [n.id for n in notices.list_notices(sample)] == [other.id, second.id, first.id]
    stored = notices.get(sample, first.id)
    assert stored is not None and stored.author == "张志强" and stored.audience == "none"
    assert stored.to_json(sample)["village"] == "联合村"
    assert len(sample.queue) == 0  # audience none: nothing is sent


@pytest.mark.parametrize(("body", "title", "audience", "reason"), [
    ("", "", "none", "no text"),
    ("   \n ", "", "none", "no text"),
    ("通知", "", "everyone", "audience must be one of"),
    ("通知", "标" * 61, "none", "at most 60"),
    ("字" * 2001, "", "none", "at most 2000"),
])
def test_a_bad_notice_is_refused_and_stores_nothing(sample: Hotline, body: str, title: str,
                                                   audience: str, reason: str) -> None:
    with pytest.raises(NoticeError, match=reason):
        notices.create(sample, vid(sample), body, title=title, audience=audience)
    assert notices.list_notices(sample) == []
    with pytest.raises(NoticeError, match="no village"):
        notices.create(sample, "v999", "通知")


def test_a_town_notice_reaches_the_teams_heads_and_duty_list_of_every_village(
        sample: Hotline) -> None:
    notice = notices.create_for_town(sample, "归流河镇", "明天全镇停电检修。", audience="team")
    assert notice.for_town and notice.village == "归流河镇"
    assert {n.id for n in notices.list_notices(sample, vid(sample, "团结村"))} == {notice.id}
    drain(sample)
    assert set(notice_sms(sample)) == VILLAGE_TEAM | VILLAGE_HEADS | TUANJIE | {DUTY}
    assert notice_sms(sample)[DUTY][0].body == "【归流河镇通知】明天全镇停电检修。"
    with pytest.raises(NoticeError, match="no town '不存在镇'"):
        notices.create_for_town(sample, "不存在镇", "通知")


# --- sending: through the workers, once per person, opt-outs respected ---------------------

def test_sending_to_the_team_texts_each_member_and_head_once_through_the_workers(
        sample: Hotline) -> None:
    notice = notices.create(sample, vid(sample), "周六上午9:30接种疫苗。", audience="team")
    assert len(sample.queue) == 1  # the fan-out is a job; the web or CLI never sends
    drain(sample)
    sent = notice_sms(sample)
    assert set(sent) == VILLAGE_TEAM | VILLAGE_HEADS
    assert all(len(ms) == 1 for ms in sent.values())
    assert sent[LEADER][0].body == "【联合村通知】周六上午9:30接种疫苗。"
    assert [m.body for m in messages.outbox(sample, VOLUNTEER)] == [
        "【联合村通知】周六上午9:30接种疫苗。"]
    tracked = notices.deliveries(sample, notice.id)
    assert tracked == {m.to: m.id for ms in sent.values() for m in ms}
    assert notices.delivery_counts(sample, notice.id) == {"delivered": 7}
    stored = notices.get(sample, notice.id)
    assert stored is not None and stored.sent_at is not None


def test_each_sms_is_its_own_send_job_so_pacing_applies_per_message(sample: Hotline) -> None:
    notice = notices.create(sample, vid(sample), "通知", audience="none")
    fan = notices.fan_out(sample, notice.id, "team")
    assert fan.queued == 7
    job_ids = set(sample.queue.get_job_ids())
    assert job_ids == {f"send-{mid}" for mid in notices.deliveries(sample, notice.id).values()}


def test_an_opted_out_resident_gets_nothing_and_their_delivery_says_optedout(
        sample: Hotline) -> None:
    messages.set_opt_out(sample, RESIDENT, True)
    notice = notices.create(sample, vid(sample), "明天停水。", audience="residents")
    drain(sample)
    assert messages.outbox(sample, RESIDENT) == []
    assert [m.body for m in messages.outbox(sample, "+8613900000003")] == ["【联合村通知】明天停水。"]
    report = {r.phone: r.status for r in notices.delivery_report(sample, notice.id)}
    assert report == {RESIDENT: "optedout", "+8613900000003": "delivered"}
    assert LANDLINE_RESIDENT not in report  # a landline hears the loudspeaker instead


def test_the_send_job_run_twice_sends_one_sms_per_person(sample: Hotline) -> None:
    notice = notices.create(sample, vid(sample), "明天停水。", audience="all")
    first = send_notice(notice.id)
    second = send_notice(notice.id)
    notices.queue_send(sample, notice.id, "all")
    drain(sample)
    assert first["queued"] == 9 and first["nomobile"] == 1
    assert second == {"queued": 0, "optedout": 0, "nomobile": 1, "already": 9}
    sent = notice_sms(sample)
    assert set(sent) == VILLAGE_TEAM | VILLAGE_HEADS | VILLAGE_RESIDENTS_WITH_MOBILE
    assert all(len(ms) == 1 for ms in sent.values())
    assert all(len(messages.outbox(sample, phone)) == 1 for phone in sent)


def test_two_fan_outs_at_once_still_send_one_sms_per_person(sample: Hotline) -> None:
    notice = notices.create(sample, vid(sample), "明天停水。")
    barrier = threading.Barrier(4)
    results: list[int] = []

    def run() -> None:
        hl = Hotline(sample.settings, url=sample.url)
        barrier.wait()
        results.append(notices.fan_out(hl, notice.id, "all").queued)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results) == 9
    assert all(len(ms) == 1 for ms in notice_sms(sample).values())


def test_sending_to_everyone_after_the_team_adds_only_the_residents(sample: Hotline) -> None:
    notice = notices.create(sample, vid(sample), "明天停水。", audience="team")
    drain(sample)
    notices.queue_send(sample, notice.id, "all")
    drain(sample)
    sent = notice_sms(sample)
    assert set(sent) == VILLAGE_TEAM | VILLAGE_HEADS | VILLAGE_RESIDENTS_WITH_MOBILE
    assert all(len(ms) == 1 for ms in sent.values())


def test_a_delivery_left_half_done_by_a_dead_fan_out_is_finished_after_the_lease(
        sample: Hotline) -> None:
    notice = notices.create(sample, vid(sample), "明天停水。")
    key = KEYS.deliveries(notice.id)
    stale = clock.timestamp() - notices.CLAIM_LEASE - 5
    sample.r.hset(key, LEADER, f"pending:{stale}")  # died between its claim and its message
    sample.r.hset(key, VOLUNTEER, f"pending:{clock.timestamp()}")  # another run is at it now
    fan = notices.fan_out(sample, notice.id, "team")
    assert fan.queued == 6 and fan.already == 1
    assert sample.r.hget(key, LEADER).startswith("m")
    assert sample.r.hget(key, VOLUNTEER).startswith("pending:")
    assert LEADER in notice_sms(sample) and VOLUNTEER not in notice_sms(sample)


def test_a_queue_send_to_nobody_or_to_a_wrong_audience_queues_nothing(sample: Hotline) -> None:
    notice = notices.create(sample, vid(sample), "通知")
    notices.queue_send(sample, notice.id, "none")
    with pytest.raises(NoticeError):
        notices.queue_send(sample, notice.id, "neighbours")
    assert len(sample.queue) == 0
    assert notices.fan_out(sample, "999", "team") == notices.Fanout()


# --- a call for help made from a ticket ----------------------------------------------------

def resident_ticket(hl: Hotline) -> tickets.Ticket:
    return tickets.open_ticket(
        hl, RESIDENT, "medicine", "sms", notify=False,
        text=f"我是{RESIDENT_NAME}，住{RESIDENT_ADDRESS}，发烧了要退烧药，电话13900000001")


def assert_no_resident(text: str) -> None:
    for private in (RESIDENT_NAME, RESIDENT_ADDRESS, "一组12号", "13900000001", "139 0000 0001",
                    "王小明", "发烧了"):
        assert private not in text


def test_a_call_for_help_names_the_grid_the_need_and_the_leader_but_never_the_resident(
        sample: Hotline, tmp_path: Path) -> None:
    ticket = resident_ticket(sample)
    notice = notices.from_ticket(sample, ticket.code, need="退烧药", author="张志强",
                                 audience="all")
    assert notice.body == ("第一网格有群众急需退烧药，哪位乡亲能帮忙，请联系队长孙玉梅，"
                           "电话138 0000 0001。谢谢大家！")
    assert notice.title == "第一网格急需退烧药" and notice.kind == "help"
    assert notice.ticket == ticket.code
    drain(sample)
    sent = notice_sms(sample)
    assert set(sent) == VILLAGE_TEAM | VILLAGE_HEADS | {"+8613900000003"}  # not the asker
    bodies = [m.body for ms in sent.values() for m in ms]
    assert all("退烧药" in b for b in bodies)
    renders = {fmt: broadcast.render(sample.settings, notice, fmt).decode()
               for fmt in ("txt", "html")}
    for text in (notice.title, notice.body, *bodies, *renders.values()):
        assert_no_resident(text)
    assert "二零" not in renders["html"]  # the page keeps digits; speech is for the wav
    assert any(e["what"] == "help_notice" and e["note"] == notice.id
               for e in tickets.history(sample, ticket.code))
    require_tool("pdftotext", "poppler-utils")
    pdf_file = tmp_path / "help.pdf"
    pdf_file.write_bytes(broadcast.render(sample.settings, notice, "pdf"))
    extracted = "".join(subprocess.run(["pdftotext", str(pdf_file), "-"], capture_output=True,
                                       text=True, check=True).stdout.split())
    assert "请联系队长孙玉梅，电话13800000001" in extracted
    assert_no_resident(extracted)


def test_a_call_for_help_uses_the_category_when_no_need_is_written(sample: Hotline) -> None:
    ticket = resident_ticket(sample)
    notice = notices.from_ticket(sample, ticket.code)
    assert notice.body.startswith("第一网格有群众急需药品，")
    assert notice.audience == "none" and len(sample.queue) == 0
    english = notices.from_ticket(sample, ticket.code, language="en")
    assert english.body == ("Someone in 第一网格 urgently needs medicine. If you can help, please "
                            "call team leader 孙玉梅 on 138 0000 0001. Thank you!")
    assert english.title == "第一网格 needs medicine" and english.language == "en"


def test_a_call_for_help_names_the_contact_chosen_by_name_or_phone(sample: Hotline) -> None:
    ticket = resident_ticket(sample)
    by_name = notices.from_ticket(sample, ticket.code, need="体温计", contact="王芳")
    assert "请联系队员王芳，电话138 0000 0003" in by_name.body
    by_phone = notices.from_ticket(sample, ticket.code, need="体温计", contact="13700001111")
    assert "请拨打137 0000 1111" in by_phone.body
    with pytest.raises(NoticeError, match="no team member or head called '不认识'"):
        notices.from_ticket(sample, ticket.code, contact="不认识")


def test_a_person_may_write_a_name_into_a_call_for_help_on_purpose(sample: Hotline) -> None:
    ticket = resident_ticket(sample)
    notice = notices.from_ticket(sample, ticket.code, need=f"给{RESIDENT_NAME}老人送退烧药")
    assert RESIDENT_NAME in notice.body


def test_a_call_for_help_from_an_unknown_or_unplaced_ticket_is_refused(sample: Hotline) -> None:
    with pytest.raises(NoticeError, match="no ticket #4242"):
        notices.from_ticket(sample, "#4242")
    stranger = tickets.open_ticket(sample, "+8613700009999", "food", "sms", notify=False)
    with pytest.raises(NoticeError, match="has no village yet"):
        notices.from_ticket(sample, stranger.code)
    assert notices.list_notices(sample) == []


# --- a head's SMS, end to end --------------------------------------------------------------

def test_a_head_texts_a_notice_the_team_gets_it_and_it_prints_and_plays(
        sample: Hotline, client: FlaskClient) -> None:
    params = {"MessageSid": f"SM{uuid.uuid4().hex}", "AccountSid": "AC" + "0" * 32,
              "From": HEAD, "To": "+8610000000000", "NumMedia": "0",
              "Body": "通知 1月7日09:30在村委会接种疫苗，请60岁以上老人带身份证。"}
    assert post_twilio(client, "/twilio/sms", params).status_code == 200
    drain(sample)
    [notice] = notices.list_notices(sample)
    assert notice.audience == "team" and notice.author == HEAD
    assert set(notice_sms(sample)) == VILLAGE_TEAM | VILLAGE_HEADS
    script = broadcast.render(sample.settings, notice, "txt").decode()
    assert script.count("1月7日09:30在村委会接种疫苗") == 2
    from gateway.broadcast import audio, speech

    spoken = audio.spoken(speech.normalise(script), "zh")
    assert "yi1 yue4 qi1 ri4 jiu3 dian3 san1 shi2 fen1" in spoken
    assert "liu4 shi2 sui4" in spoken


# --- the command line ----------------------------------------------------------------------

def hotline_cmd(*args: str, env: dict[str, str],
                stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], env=env, text=True,
                          capture_output=True, input=stdin, timeout=120)


@pytest.fixture
def env(sample: Hotline, data_dir: Path) -> dict[str, str]:
    return {**os.environ, "REDIS_URL": sample.url, "HOTLINE_DATA_DIR": str(data_dir),
            "HOTLINE_SMS_CHANNEL": "outbox"}


def test_notice_create_prints_the_id_alone_and_sends_nothing_by_default(
        env: dict[str, str], sample: Hotline) -> None:
    done = hotline_cmd("notice", "create", "--village", "联合村", "--title", "疫苗接种",
                       "--body", "周六接种疫苗。", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().isdigit() and done.stdout == done.stdout.strip() + "\n"
    stored = notices.get(sample, done.stdout.strip())
    assert stored is not None and stored.title == "疫苗接种" and stored.audience == "none"
    assert len(sample.queue) == 0
    sent = hotline_cmd("notice", "create", "--village", "联合村", "--title", "停水",
                       "--body", "-", "--send", "team", env=env, stdin="明天停水。\n")
    assert sent.returncode == 0, sent.stderr
    assert len(sample.queue) == 1
    town = hotline_cmd("notice", "create", "--town", "归流河镇", "--title", "停电",
                       "--body", "停电检修。", env=env)
    assert town.returncode == 0 and notices.get(sample, town.stdout.strip()) is not None


@pytest.mark.parametrize(("args", "message"), [
    (("--village", "不存在村", "--title", "T", "--body", "B"), "no village '不存在村'"),
    (("--village", "联合村", "--title", "T", "--body", " "), "the notice has no text"),
    (("--title", "T", "--body", "B"), "give --village or --town"),
])
def test_a_bad_notice_create_says_why_in_one_line_and_stores_nothing(
        env: dict[str, str], sample: Hotline, args: tuple[str, ...], message: str) -> None:
    done = hotline_cmd("notice", "create", *args, env=env)
    assert done.returncode == 2 and done.stdout == ""
    assert message in done.stderr and "Traceback" not in done.stderr
    assert notices.list_notices(sample) == []


def test_notice_send_list_and_show_track_each_person(env: dict[str, str],
                                                     sample: Hotline) -> None:
    notice = notices.create(sample, vid(sample), "明天停水。")
    done = hotline_cmd("notice", "send", notice.id, "--to", "residents", env=env)
    assert done.returncode == 0, done.stderr
    drain(sample)
    shown = hotline_cmd("notice", "show", notice.id, env=env)
    assert "王秀英" in shown.stdout and "delivered" in shown.stdout
    assert "13900000001" not in shown.stdout  # numbers masked
    listed = hotline_cmd("notice", "list", "--village", "联合村", env=env)
    assert f"{notice.id}" in listed.stdout and "delivered=2" in listed.stdout
    missing = hotline_cmd("notice", "send", "999", "--to", "team", env=env)
    assert missing.returncode == 2 and "no notice '999'" in missing.stderr


def test_notice_from_ticket_prints_the_id_of_a_call_for_help(env: dict[str, str],
                                                            sample: Hotline) -> None:
    ticket = resident_ticket(sample)
    done = hotline_cmd("notice", "from-ticket", ticket.code, "--need", "退烧药", env=env)
    assert done.returncode == 0, done.stderr
    notice = notices.get(sample, done.stdout.strip())
    assert notice is not None and "退烧药" in notice.body
    assert_no_resident(notice.body)


def test_broadcast_render_writes_every_format(env: dict[str, str], sample: Hotline,
                                              tmp_path: Path) -> None:
    require_tool("espeak-ng", "espeak-ng")
    notice = notices.create(sample, vid(sample), "周六9:30接种疫苗。", title="疫苗接种")
    txt = hotline_cmd("broadcast", "render", notice.id, "--format", "txt", "--repeat", "3",
                      env=env)
    assert txt.returncode == 0 and txt.stdout.count("周六9:30接种疫苗。") == 3
    page = hotline_cmd("broadcast", "render", notice.id, "--format", "html", env=env)
    assert page.stdout.startswith("<!DOCTYPE html>")
    for fmt in ("pdf", "wav"):
        out = tmp_path / f"notice.{fmt}"
        done = hotline_cmd("broadcast", "render", notice.id, "--format", fmt, "-o", str(out),
                           env=env)
        assert done.returncode == 0, done.stderr
        assert done.stdout == ""
    assert (tmp_path / "notice.pdf").read_bytes().startswith(b"%PDF-")
    with wave.open(str(tmp_path / "notice.wav")) as w:
        assert w.getnframes() / w.getframerate() > 10


def test_a_missing_font_or_voice_is_one_line_naming_the_package(
        env: dict[str, str], sample: Hotline, tmp_path: Path) -> None:
    notice = notices.create(sample, vid(sample), "通知")
    no_fonts = tmp_path / "fonts.conf"
    no_fonts.write_text("<?xml version='1.0'?><fontconfig></fontconfig>\n")
    done = hotline_cmd("broadcast", "render", notice.id, "--format", "pdf", "-o",
                       str(tmp_path / "x.pdf"), env={**env, "FONTCONFIG_FILE": str(no_fonts)})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    [line] = [ln for ln in done.stderr.splitlines() if ln.startswith("hotline:")]
    assert line == ('hotline: cannot render pdf: the font "WenQuanYi Zen Hei" is not installed; '
                    "install it with: apt-get install fonts-wqy-zenhei")
    done = hotline_cmd("broadcast", "render", notice.id, "--format", "wav", "-o",
                       str(tmp_path / "x.wav"), env={**env, "PATH": str(tmp_path)})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert ("hotline: cannot render wav: espeak-ng is not installed; install it with: "
            "apt-get install espeak-ng") in done.stderr
    assert not (tmp_path / "x.pdf").exists() and not (tmp_path / "x.wav").exists()
    unknown = hotline_cmd("broadcast", "render", "999", "--format", "txt", env=env)
    assert unknown.returncode == 2 and "no notice '999'" in unknown.stderr
