"""`hotline prompts` and its store: recordings from phones checked, trimmed, normalised, kept twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from gateway import calls, prompt_store, prompts
from gateway.context import Hotline
from gateway.prompt_audio import AudioRefused
from tests.audio_files import encoded, rms, seconds, tone
from tests.callsim import FlaskTransport, SimCall
from tests.conftest import AUTH_TOKEN, PUBLIC_URL, require_tool

BATER = "+8613900000004"  # 巴特尔, 团结村, Mongolian


@pytest.fixture(autouse=True)
def _ffmpeg() -> None:
    require_tool("ffmpeg", "ffmpeg")


def hotline_cmd(hl: Hotline, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": hl.url, "HOTLINE_DATA_DIR": str(hl.settings.data_dir)}
    return subprocess.run([sys.executable, "-m", "gateway.cli", "prompts", *args], env=env,
                          text=True, capture_output=True, timeout=120)


def stored(hl: Hotline) -> dict[str, bytes]:
    """Every file under the data folder's prompts, by path (what a refusal must not change)."""
    root = prompts.data_root(hl.settings)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != prompts.STAMP}


@pytest.mark.parametrize("suffix", [".wav", ".mp3", ".amr", ".m4a"])
def test_a_phone_recording_is_kept_for_twilio_and_for_the_sip_agent(
        sample: Hotline, tmp_path: Path, suffix: str) -> None:
    source = encoded(tmp_path / f"menu{suffix}")
    done = hotline_cmd(sample, "add", "menu", str(source), "--language", "mn",
                       "--village", "团结村")
    assert done.returncode == 0, done.stderr
    assert "menu (mn, 团结村)" in done.stdout
    folder = prompts.data_root(sample.settings) / "villages" / "团结村" / "mn"
    assert sorted(p.name for p in folder.iterdir()) == ["menu.mp3", "menu.wav"]
    with wave.open(str(folder / "menu.wav"), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
    assert 1.0 < seconds(folder / "menu.wav") < 1.9
    assert (folder / "menu.mp3").read_bytes()[:3] in (b"ID3", b"\xff\xfb", b"\xff\xf3")
    listed = json.loads(hotline_cmd(sample, "list", "--json", "--village", "团结村",
                                    "--language", "mn").stdout)
    menu = next(r for r in listed if r["name"] == "menu")
    assert (menu["language"], menu["recording"], menu["text"][:5]) == ("mn", "village", "送药请按1")


def test_silence_around_the_words_is_trimmed_and_a_quiet_voice_made_louder(
        sample: Hotline, tmp_path: Path) -> None:
    source = tone(tmp_path / "quiet.wav", 1.5, amplitude=0.02, lead=1.0, tail=1.5)
    kept = prompt_store.add(sample.settings, "greeting", source, "mn")
    wav = prompt_store.folder(sample.settings, "mn") / "greeting.wav"
    assert 1.5 <= kept < 1.9 and 1.5 <= seconds(wav) < 1.9  # 4 s in, the 1.5 s tone kept
    assert rms(wav) > 4 * rms(source) * (4.0 / 1.5) ** 0.5  # louder, beyond the trimmed silence


BAD = {
    "empty": (lambda p: p.write_bytes(b""), "empty"),
    "broken": (lambda p: p.write_bytes(os.urandom(4000)), "cannot be read"),
    "text as mp3": (lambda p: p.write_text("not audio\n" * 50), "cannot be read"),
    "silent": (lambda p: tone(p, 3.0, amplitude=0.0), "silent"),
    "hiss only": (lambda p: tone(p, 3.0, amplitude=0.002), "silent"),
    "over a minute": (lambda p: tone(p, 61.0, rate=8000), "over 60 seconds"),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_a_bad_file_is_refused_with_a_clear_reason_and_nothing_changes(
        sample: Hotline, tmp_path: Path, kind: str) -> None:
    prompt_store.add(sample.settings, "menu", encoded(tmp_path / "good.wav"), "mn")
    before, stamp = stored(sample), prompts.stamp(sample.settings)
    make, reason = BAD[kind]
    bad = tmp_path / ("bad.mp3" if kind == "text as mp3" else "bad.wav")
    make(bad)
    with pytest.raises(AudioRefused, match=reason):
        prompt_store.add(sample.settings, "menu", bad, "mn")
    assert stored(sample) == before and prompts.stamp(sample.settings) == stamp
    left = sorted(p.name for p in prompt_store.folder(sample.settings, "mn").iterdir())
    assert left == ["menu.mp3", "menu.wav"]  # no work files left behind


def test_the_command_refuses_a_bad_file_a_missing_one_and_unknown_names_with_one_line(
        sample: Hotline, tmp_path: Path) -> None:
    silent = tone(tmp_path / "silent.wav", 2.0, amplitude=0.0)
    cases = [(("add", "menu", str(silent), "--language", "mn"), 1, "silent"),
             (("add", "menu", str(tmp_path / "none.wav"), "--language", "mn"), 1, "no such file"),
             (("add", "no_such_prompt", str(silent), "--language", "mn"), 1, "no prompt"),
             (("add", "menu", str(silent), "--language", "mn", "--village", "无此村"), 2,
              "no village"),
             (("remove", "menu", "--language", "mn"), 1, "no stored recording")]
    for args, code, words in cases:
        done = hotline_cmd(sample, *args)
        assert (done.returncode, done.stdout) == (code, ""), done
        assert words in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert stored(sample) == {}


def test_remove_takes_both_forms_away_and_the_prompt_falls_back(sample: Hotline,
                                                                 tmp_path: Path) -> None:
    prompt_store.add(sample.settings, "menu", encoded(tmp_path / "m.wav"), "mn", "团结村")
    assert prompts.find(sample.settings, "mn", "menu", "团结村") is not None
    done = hotline_cmd(sample, "remove", "menu", "--language", "mn", "--village", "团结村")
    assert done.returncode == 0, done.stderr
    assert stored(sample) == {} and prompts.find(sample.settings, "mn", "menu", "团结村") is None


def test_list_names_every_prompt_with_its_mandarin_words_per_language(sample: Hotline,
                                                                     tmp_path: Path) -> None:
    prompt_store.add(sample.settings, "digit_1", encoded(tmp_path / "one.wav"), "mn")
    data = json.loads(hotline_cmd(sample, "list", "--json").stdout)
    assert {r["name"] for r in data} == set(prompts.NAMES)
    assert len(data) == 3 * len(prompts.NAMES)
    got = {(r["name"], r["language"]): (r["text"], r["recording"]) for r in data}
    assert got["digit_1", "mn"] == ("幺", "global")
    assert got["digit_1", "zh"] == ("幺", "none")
    assert got["confirm_doctor", "mn"] == ("您选的是：看病就医。确认请按1，重新选择请按2。", "none")
    table = hotline_cmd(sample, "list", "--language", "mn").stdout.splitlines()
    assert table[0].split() == ["name", "mn", "words"]
    assert "digit_1" in table[1 + list(prompts.NAMES).index("digit_1")]


def test_a_recording_added_by_command_is_what_the_next_caller_hears(
        sample: Hotline, client: FlaskClient, tmp_path: Path) -> None:
    first = SimCall(FlaskTransport(client), BATER, PUBLIC_URL, AUTH_TOKEN,
                    status_fallback=lambda form: calls.call_status(sample, form)).ring()
    assert first.last[2].kind == "say"
    assert hotline_cmd(sample, "add", "menu", str(encoded(tmp_path / "m.m4a")), "--language",
                       "mn").returncode == 0
    call = SimCall(FlaskTransport(client), BATER, PUBLIC_URL, AUTH_TOKEN,
                   status_fallback=lambda form: calls.call_status(sample, form)).ring()
    url = call.last[2].text
    assert call.last[2].kind == "play" and url.startswith(f"{PUBLIC_URL}/audio/mn/menu.mp3?v=")
    got = client.get(url[len(PUBLIC_URL):])
    assert got.status_code == 200 and got.mimetype == "audio/mpeg"
