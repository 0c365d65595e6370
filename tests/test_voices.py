"""Callers in Mongolian (and any language without a voice of its own): recordings prompt by prompt,
Mandarin wherever none exists, the call working as for anyone else."""

from __future__ import annotations

import shutil
import threading
import time
import wave
from collections.abc import Callable
from pathlib import Path

import pytest
from flask.testing import FlaskClient

import ivr
import ivr.machine
from gateway import calls, messages, prompts, tickets
from gateway.context import Hotline
from gateway.settings import ROOT
from gateway.sip import media as sip_media
from gateway.sip.media import Media
from tests.callsim import FlaskTransport, SimCall
from tests.conftest import AUTH_TOKEN, PUBLIC_URL, RESIDENT, require_tool

BATER = "+8613900000004"  # 巴特尔, 团结村, 语言 蒙古语 in the sample ledger
EMERGENCY = "如有危及生命的紧急情况，请马上挂机，拨打幺二零。"
MENU = "送药请按1，买菜送饭请按2，看病请按3，打疫苗请按4，水电气暖请按5，留言请按9，重听请按星号。"
ZH_DIGITS = "零幺二三四五六七八九"
TUANJIE = "%E5%9B%A2%E7%BB%93%E6%9D%91"  # 团结村 in a URL


def record(data_dir: Path, rel: str, seconds: float = 0.3) -> Path:
    """A stored recording (its 8 kHz WAV form) at prompts/<rel>.wav under the data folder."""
    path = data_dir / "prompts" / f"{rel}.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x10\x00" * int(8000 * seconds))
    (data_dir / "prompts" / prompts.STAMP).touch()  # as `hotline prompts add` does
    return path


def dial(hl: Hotline, client: FlaskClient, caller: str) -> SimCall:
    return SimCall(FlaskTransport(client), caller, PUBLIC_URL, AUTH_TOKEN,
                   status_fallback=lambda form: calls.call_status(hl, form))


def played(call: SimCall) -> list[tuple[str, str]]:
    """What the last answer played: ("play", path under /audio/ without the query) or ("say", words)."""
    out = []
    for h in call.last:
        if h.kind == "play":
            assert h.text.startswith(f"{PUBLIC_URL}/audio/")
            out.append(("play", h.text[len(PUBLIC_URL) + 7:].split("?")[0]))
        else:
            out.append(("say", h.text))
    return out


def test_a_mongolian_resident_hears_each_recorded_prompt_and_mandarin_for_the_rest(
        sample: Hotline, client: FlaskClient) -> None:
    data = sample.settings.data_dir
    record(data, "villages/团结村/mn/greeting")
    record(data, "mn/menu")
    record(data, "mn/received_medicine")
    for d in "02468":
        record(data, f"mn/digit_{d}")
    call = dial(sample, client, BATER).ring()
    assert played(call) == [("say", EMERGENCY), ("play", f"villages/{TUANJIE}/mn/greeting.wav"),
                            ("play", "mn/menu.wav")]
    assert call.last[0].language == "zh-CN"  # no Mongolian recording of the 120 line: Mandarin
    call.press("1")
    assert played(call) == [("say", "您选的是：送药。确认请按1，重新选择请按2。")]
    call.press("1")
    [ticket] = tickets.list_tickets(sample)
    assert (ticket.caller, ticket.category, ticket.village) == (BATER, "medicine", "团结村")
    digits = [("play", f"mn/digit_{d}.wav") if d in "02468" else ("say", ZH_DIGITS[int(d)])
              for d in ticket.code]
    assert played(call) == [("play", "mn/received_medicine.wav"), ("say", "编号是："), *digits,
                            ("say", "再说一遍，编号是："), *digits, ("say", "编号也已用短信发到您的手机。"),
                            ("say", "志愿者会尽快联系您。再见。")]
    assert call.ended
    got = client.get("/audio/mn/digit_2.wav")
    assert got.status_code == 200 and got.mimetype == "audio/wav"
    [sms] = [m for m in messages.list_messages(sample) if m.to == BATER]
    assert sms.body.startswith("您的送药求助已登记") and f"#{ticket.code}" in sms.body


def test_a_mongolian_caller_without_any_recording_hears_the_whole_menu_in_mandarin(
        sample: Hotline, client: FlaskClient) -> None:
    call = dial(sample, client, BATER).ring()
    assert [h.text for h in call.last] == [EMERGENCY, "您好，这里是团结村暖心服务热线。", MENU]
    assert {h.language for h in call.last} == {"zh-CN"}
    call.press("9").speak()
    assert [t.category for t in tickets.list_tickets(sample)] == ["voicemail"]


def test_a_mandarin_caller_hears_mandarin_whatever_mongolian_is_recorded(
        sample: Hotline, client: FlaskClient) -> None:
    data = sample.settings.data_dir
    record(data, "mn/menu")
    record(data, "mn/greeting")
    record(data, "villages/联合村/mn/greeting")
    call = dial(sample, client, RESIDENT).ring()
    assert [h.text for h in call.last] == [EMERGENCY, "您好，这里是联合村暖心服务热线。", MENU]
    record(data, "zh/menu")
    assert played(dial(sample, client, RESIDENT).ring())[2] == ("play", "zh/menu.wav")


def test_a_mongolian_caller_hears_the_mandarin_recording_where_there_is_no_mongolian_one(
        sample: Hotline, client: FlaskClient) -> None:
    data = sample.settings.data_dir
    record(data, "zh/emergency")
    record(data, "villages/团结村/zh/menu")
    record(data, "mn/menu")  # the village's Mandarin menu is not Mongolian: the hotline's mn wins
    assert played(dial(sample, client, BATER).ring()) == [
        ("play", "zh/emergency.wav"), ("say", "您好，这里是团结村暖心服务热线。"), ("play", "mn/menu.wav")]


def test_a_village_recording_comes_before_the_hotline_wide_one(sample: Hotline,
                                                              client: FlaskClient) -> None:
    data = sample.settings.data_dir
    record(data, "mn/menu")
    record(data, "villages/团结村/mn/menu")
    assert played(dial(sample, client, BATER).ring())[2] == (
        "play", f"villages/{TUANJIE}/mn/menu.wav")


def test_a_replaced_recording_gets_a_new_url_so_no_cache_plays_the_old_one(
        sample: Hotline, client: FlaskClient) -> None:
    path = record(sample.settings.data_dir, "mn/menu")
    first = dial(sample, client, BATER).ring().last[2].text
    path.unlink()
    record(sample.settings.data_dir, "mn/menu", seconds=0.5)
    assert dial(sample, client, BATER).ring().last[2].text != first


def test_texts_to_a_mongolian_speaker_use_an_mn_template_only_where_one_exists(
        sample: Hotline, tmp_path: Path, app_with: Callable[..., FlaskClient]) -> None:
    own = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", own)
    (own / "sms" / "mn").mkdir()
    (own / "sms" / "mn" / "call_code.txt").write_text("ᠲᠤᠰᠠᠯᠠᠮᠵᠢ #{{ ticket.code }}\n",
                                                      encoding="utf-8")
    client = app_with(templates_dir=own)
    dial(sample, client, BATER).ring().press("9").speak()
    [ticket] = tickets.list_tickets(sample)
    [sms] = [m for m in messages.list_messages(sample) if m.to == BATER]
    assert sms.body == f"ᠲᠤᠰᠠᠯᠠᠮᠵᠢ #{ticket.code}"


def test_the_sip_agent_plays_a_stored_recording_from_its_own_8khz_file(
        sample: Hotline, tmp_path: Path) -> None:
    wav = record(sample.settings.data_dir, "mn/menu", seconds=0.5)
    (wav.with_suffix(".mp3")).write_bytes(b"ID3 not fetched")
    found = prompts.heard(sample.settings, "mn", "menu")
    assert found is not None and found.rel == "mn/menu.mp3"
    media = Media(tmp_path / "cache", local=lambda url: prompts.sip_file(sample.settings, url))
    clip = media.play(found.url(PUBLIC_URL))
    assert clip is not None and clip.path == wav and abs(clip.seconds - 0.5) < 0.01
    assert prompts.sip_file(sample.settings, f"{PUBLIC_URL}/audio/../mn/menu.mp3") is None
    assert prompts.sip_file(sample.settings, "https://elsewhere.example/audio/mn/menu.mp3") is None



def test_calls_that_want_the_same_new_prompt_at_once_wait_for_one_voice_to_make_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Eight callers read their codes at the same moment: each digit is spoken once, not eight
    # times over on a busy box while every caller waits in silence.
    require_tool("espeak-ng", "espeak-ng")
    require_tool("sox", "sox")
    render, made = sip_media.audio.render, []

    def slow_render(text: str, language: str) -> bytes:
        made.append(text)
        time.sleep(0.3)  # long enough that every caller asks while it is being made
        return render(text, language)

    monkeypatch.setattr(sip_media.audio, "render", slow_render)
    media, start = Media(tmp_path / "cache"), threading.Barrier(4)
    clips: list[object] = []

    def caller() -> None:
        start.wait()
        clips.append(media.say("七"))

    callers = [threading.Thread(target=caller) for _ in range(4)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join(timeout=60)
    assert made == ["七"]
    assert len(clips) == 4 and len({clip.path for clip in clips}) == 1  # type: ignore[attr-defined]

# --- a caller not in the ledger chooses Mongolian ---------------------------------------------

STRANGER = "+8613700009999"


def test_the_offer_key_is_no_menu_key() -> None:
    assert ivr.machine.OFFER_KEY not in ivr.MENU and ivr.machine.OFFER_KEY not in "*#"


def test_without_a_mongolian_greeting_nobody_is_offered_mongolian(sample: Hotline,
                                                                 client: FlaskClient) -> None:
    record(sample.settings.data_dir, "mn/language_offer")
    call = dial(sample, client, STRANGER).ring()
    assert [h.text for h in call.last] == [EMERGENCY, "您好，这里是暖心服务热线。", MENU]
    call.press("0")
    assert call.said.startswith("您按的键不对。")


def test_a_stranger_presses_0_after_the_120_line_and_hears_the_menu_in_mongolian(
        sample: Hotline, client: FlaskClient) -> None:
    data = sample.settings.data_dir
    record(data, "mn/greeting")
    record(data, "mn/language_offer")
    record(data, "mn/menu")
    call = dial(sample, client, STRANGER).ring()
    assert played(call) == [("say", EMERGENCY), ("play", "mn/language_offer.wav"),
                            ("say", "您好，这里是暖心服务热线。"), ("say", MENU)]
    assert call.twiml.index("language_offer") > call.twiml.index("<Gather")  # 0 at once
    call.press("0")
    assert played(call) == [("play", "mn/greeting.wav"), ("play", "mn/menu.wav")]
    call.press("2")
    assert played(call) == [("say", "您选的是：送餐送菜。确认请按1，重新选择请按2。")]
    call.press("1").speak()
    [ticket] = tickets.list_tickets(sample)
    assert (ticket.category, ticket.village_id, ticket.caller) == ("food", tickets.TRIAGE, STRANGER)
    assert ticket.recording_url  # name and address, asked in Mandarin


def test_the_offer_is_said_in_mandarin_where_only_the_greeting_is_recorded(
        sample: Hotline, client: FlaskClient) -> None:
    record(sample.settings.data_dir, "mn/greeting")
    call = dial(sample, client, STRANGER).ring()
    assert played(call)[1] == ("say", "蒙古语服务请按0。")


def test_a_caller_in_the_ledger_is_never_offered_a_language_and_0_stays_a_wrong_key(
        sample: Hotline, client: FlaskClient) -> None:
    record(sample.settings.data_dir, "mn/greeting")
    record(sample.settings.data_dir, "mn/language_offer")
    call = dial(sample, client, RESIDENT).ring()
    assert [h.text for h in call.last] == [EMERGENCY, "您好，这里是联合村暖心服务热线。", MENU]
    call.press("0")
    assert call.said == f"您按的键不对。 {MENU}"
