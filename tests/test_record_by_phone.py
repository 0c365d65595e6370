"""Recording prompts by phone: a village head with a PIN records the village's prompts one by one."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from gateway import accounts, prompts, tickets
from gateway.accounts import AccountError
from gateway.app import create_app
from gateway.context import Hotline
from gateway.store import KEYS
from ivr import studio
from ivr.machine import Call, Hangup, KeepIntent, Key, NothingRecorded, Record, Recorded, Silence
from tests.audio_files import tone
from tests.callsim import SimCall
from tests.conftest import drain
from tests.fake_twilio import ACCOUNT_SID, FakeTwilio
from tests.test_dashboard import login, press, sim, sim_post, spoken, token  # noqa: F401  (sim: a fixture)
from tests.test_voice import make_phone, texts_to
from workers import runtime

BAI = "+8613800000041"  # the head of 团结村 in the sample ledger
BATEER = "+8613900000004"  # 巴特尔 of 团结村, whose language is 蒙古语
PIN = "482915"
TODO = (("greeting", "您好，这里是团结村暖心服务热线。"), ("menu", "送药请按1……"),
        ("goodbye", "再见。"))


# --- the menu as plain functions -------------------------------------------------------------

def at(stage: str, **fields: object) -> Call:
    return Call(caller=BAI, known=True, recorder=True, stage=stage, **fields)  # type: ignore[arg-type]


def test_the_right_pin_leads_to_the_choice_of_language_then_the_first_prompts_words() -> None:
    picked = studio.advance(at("pin"), studio.Pin(True), TODO)
    assert picked.call.stage == "pick" and picked.prompts[0].name == "studio_pick"
    first = studio.advance(picked.call, Key("2"), TODO)
    assert (first.call.stage, first.call.take_language, first.call.take) == ("say", "mn", 0)
    assert first.prompts[0].context["words"] == TODO[0][1] and isinstance(first.then, Record)


def test_a_take_is_heard_back_and_kept_with_1_recorded_again_with_2_skipped_with_3() -> None:
    said = at("say", take_language="mn")
    heard = studio.advance(said, Recorded("https://x/RE1"), TODO)
    assert heard.call.stage == "check" and [p.play for p in heard.prompts] == ["", "https://x/RE1", ""]
    kept = studio.advance(heard.call, Key("1"), TODO)
    assert kept.keep == KeepIntent("greeting", "mn", "https://x/RE1")
    assert (kept.call.stage, kept.call.take) == ("say", 1)  # on to the menu's words
    again = studio.advance(heard.call, Key("2"), TODO)
    assert (again.call.stage, again.call.take, again.keep) == ("say", 0, None)
    skipped = studio.advance(heard.call, Key("3"), TODO)
    assert (skipped.call.take, skipped.keep) == (1, None)


def test_keeping_the_last_prompt_ends_the_call_and_hash_ends_it_at_any_check() -> None:
    last = at("check", take_language="zh", take=2, take_url="https://x/RE9")
    kept = studio.advance(last, Key("1"), TODO)
    assert kept.keep is not None and kept.keep.name == "goodbye" and isinstance(kept.then, Hangup)
    ended = studio.advance(at("check", take_url="https://x/RE2"), Key("#"), TODO)
    assert ended.keep is None and isinstance(ended.then, Hangup)


def test_nothing_recorded_asks_again_then_moves_on() -> None:
    once = studio.advance(at("say", take_language="mn"), NothingRecorded(), TODO)
    assert (once.call.stage, once.call.take, once.prompts[0].name) == ("say", 0, "studio_nothing")
    twice = studio.advance(once.call, NothingRecorded(), TODO)
    assert (twice.call.stage, twice.call.take) == ("say", 1)


def test_three_wrong_pins_end_the_call_and_silence_never_keeps_a_take() -> None:
    call = at("pin")
    for _ in range(studio.PIN_TRIES - 1):
        step = studio.advance(call, studio.Pin(False), TODO)
        assert step.call.stage == "pin" and step.prompts[0].name == "studio_pin_wrong"
        call = step.call
    assert isinstance(studio.advance(call, studio.Pin(False), TODO).then, Hangup)
    check = at("check", take_url="https://x/RE3")
    for _ in range(3):
        step = studio.advance(check, Silence(), TODO)
        assert step.keep is None
        check = step.call
    assert isinstance(step.then, Hangup)


# --- the PIN on the dashboard ----------------------------------------------------------------

def test_a_head_sets_the_number_and_pin_on_the_prompts_page(people: Hotline) -> None:
    client = create_app(people.settings, url=people.url).test_client()
    login(client, "bai")
    page = client.get("/prompts").get_data(as_text=True)
    assert 'id="by-phone"' in page and "还没有登记号码" in page
    def set_phone(phone: str, pin: str) -> str:
        return client.post("/prompts/phone", data={"phone": phone, "pin": pin,
                                                   "csrf_token": token(client, "/prompts")},
                           follow_redirects=True).get_data(as_text=True)

    refused = set_phone("138 0000 0021", PIN)
    assert "不是本村台账里的" in refused  # 张志强 is 联合村's head
    weak = set_phone(BAI, "111111")
    assert "六位都一样" in weak and accounts.recorder(people, BAI) is None
    done = set_phone("138 0000 0041", PIN)
    assert "电话录音已开通" in done and "13800000041" not in done.split("id=\"by-phone\"")[0]
    found = accounts.recorder(people, BAI)
    assert found is not None and found.name == "bai"
    assert PIN not in str(people.r.hgetall(KEYS.user("bai")))  # a hash, never the PIN


def test_a_leader_cannot_record_by_phone_and_a_number_serves_one_account(people: Hotline) -> None:
    accounts.create(people, "li", "leader", "a-long-password", "团结村")
    with pytest.raises(AccountError, match="not_recorder"):
        accounts.set_recorder(people, "li", BAI, PIN)
    accounts.set_recorder(people, "admin", BAI, PIN)
    with pytest.raises(AccountError, match="phone_taken"):
        accounts.set_recorder(people, "bai", BAI, "593017")


def test_wrong_pins_are_counted_by_day_across_calls(people: Hotline) -> None:
    accounts.set_recorder(people, "bai", BAI, PIN)
    bai = accounts.recorder(people, BAI)
    assert bai is not None
    assert all(not accounts.check_pin(people, bai, "000001") for _ in range(accounts.PIN_TRIES))
    assert not accounts.check_pin(people, bai, PIN)  # the right one too, for the rest of the day


# --- a whole call over Twilio -----------------------------------------------------------------

@pytest.fixture
def studio_line(people: Hotline, fake: FakeTwilio) -> Hotline:
    """The hotline with 白玉兰 (head of 团结村) able to record, Twilio's recordings at `fake`."""
    hl = people.with_settings(people.settings.with_overrides(
        twilio_account_sid=ACCOUNT_SID, twilio_api_base=fake.url))
    runtime.use(hl)
    accounts.set_recorder(hl, "bai", BAI, PIN)
    return hl


def call_from(hl: Hotline, caller: str) -> SimCall:
    return make_phone(hl, create_app(hl.settings, url=hl.url).test_client())(caller)


def test_a_head_records_the_mongolian_greeting_by_phone_and_bateer_hears_it(
        studio_line: Hotline, fake: FakeTwilio, tmp_path: Path) -> None:
    hl = studio_line
    call = call_from(hl, BAI).ring().press("#")
    assert call.said == "请输入六位录音密码。"
    call.press(PIN)
    assert "录蒙古语请按2" in call.said
    call.press("2")
    assert "第1段" in call.said and "您好，这里是团结村暖心服务热线。" in call.said
    take = fake.add_recording(tone(tmp_path / "take.wav", 2.0, lead=0.5).read_bytes())
    call.speak(url=take)
    assert call.said == f"您录的是： [play {take}] 保留请按1，重录请按2，跳过请按3，结束请按井号键。"
    call.press("1")
    assert call.said.startswith("已保留。 第2段")  # the menu's words next
    call.hang_up()  # the menu is left unrecorded
    assert tickets.open_ticket_of(hl, BAI) is None  # a recorder's call asks nobody to call back
    drain(hl)  # the worker fetches the take from Twilio and stores it
    found = prompts.find(hl.settings, "mn", "greeting", "团结村", local=True)
    assert found is not None and found.stored
    assert any(r.path.endswith(take.rsplit("/", 1)[1] + ".wav") for r in fake.received)
    heard = call_from(hl, BATEER).ring()
    assert heard.last[1].kind == "play" and "/villages/" in heard.last[1].text  # his village's voice
    assert heard.last[2].kind == "say"  # the menu, not recorded, in Mandarin words


def test_a_stranger_pressing_hash_hears_wrong_key_and_a_forged_number_needs_the_pin(
        studio_line: Hotline) -> None:
    stranger = call_from(studio_line, "+8613700000099").ring().press("#")
    assert stranger.said.startswith("您按的键不对。")
    forged = call_from(studio_line, BAI).ring().press("#").press("123456")
    assert forged.said.startswith("密码不对。")
    forged.press("654321").press("000000")
    assert forged.ended


def test_a_take_too_quiet_to_keep_changes_nothing_and_the_head_is_told_by_sms(
        studio_line: Hotline, fake: FakeTwilio, tmp_path: Path) -> None:
    hl = studio_line
    call = call_from(hl, BAI).ring().press("#").press(PIN).press("2")
    silent = fake.add_recording(tone(tmp_path / "quiet.wav", 2.0, amplitude=0.0).read_bytes())
    call.speak(url=silent).press("1").hang_up()
    drain(hl)
    assert prompts.find(hl.settings, "mn", "greeting", "团结村", local=True) is None
    [told] = texts_to(hl, BAI, "help")
    assert "没有保存" in told.body and "声音太小" in told.body and len(told.body) <= 70


def test_a_take_from_anywhere_but_twilio_or_our_agent_is_never_fetched(
        studio_line: Hotline, fake: FakeTwilio) -> None:
    from gateway import jobs

    jobs.keep_take(studio_line, "http://169.254.169.254/latest/meta-data", "greeting", "mn",
                   "团结村", BAI)
    drain(studio_line)
    assert prompts.find(studio_line.settings, "mn", "greeting", "团结村", local=True) is None
    [told] = texts_to(studio_line, BAI, "help")
    assert "没有保存" in told.body and fake.received == []


def test_in_the_dashboards_simulator_a_head_records_by_phone_too(
        sim: FlaskClient, people: Hotline) -> None:  # noqa: F811  (the fixture imported above)
    accounts.set_recorder(people, "bai", BAI, PIN)
    turn = sim_post(sim, "/simulator/call", {"from": BAI}).get_json()
    for key in ("#", PIN, "2"):
        turn = press(sim, turn, key)
    assert turn["wait"]["kind"] == "record" and "第1段" in spoken(turn)
    checked = sim_post(sim, "/simulator/call/step", {
        "sid": turn["sid"], "from": BAI, "kind": "record", "url": turn["wait"]["action"],
        "callback": turn["wait"]["callback"]}).get_json()
    assert "您录的是" in spoken(checked)
    press(sim, checked, "1")
    drain(people)
    found = prompts.find(people.settings, "mn", "greeting", "团结村", local=True)
    assert found is not None and found.stored
