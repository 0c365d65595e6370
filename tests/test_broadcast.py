"""Loudspeaker scripts: the words read aloud, the printed page, its PDF and the audio file."""

from __future__ import annotations

import importlib.abc
import io
import re
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import pytest
from pypdf import PdfReader

from gateway import broadcast
from gateway.broadcast import MissingPackage, audio, page, pdf, script
from gateway.notices import Notice
from gateway.settings import ROOT, Settings
from tests.conftest import require_tool

# 2023-01-05 10:00 in Asia/Shanghai, a Thursday.
JAN_5 = 1672884000.0
BODY = ("本周六（1月7日）上午9:00-11:30在村委会接种疫苗，60岁以上老人请带好身份证。\n"
        "气温-15°C，请注意保暖。有问题请拨打孙玉梅电话13800000001。")


def notice(**changes: object) -> Notice:
    fields: dict[str, object] = {
        "id": "7", "village_id": "v1", "village": "联合村", "title": "疫苗接种通知", "body": BODY,
        "author": "", "audience": "none", "created_at": JAN_5, "town": "归流河镇",
        "village_ids": ("v1",), "language": "zh"}
    fields.update(changes)
    return Notice(**fields)  # type: ignore[arg-type]


@pytest.fixture
def cfg(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path)


def txt(cfg: Settings, n: Notice, **options: object) -> str:
    return broadcast.render(cfg, n, "txt", **options).decode()  # type: ignore[arg-type]


def html(cfg: Settings, n: Notice, **options: object) -> str:
    return broadcast.render(cfg, n, "html", **options).decode()  # type: ignore[arg-type]


# --- txt: the words read aloud -------------------------------------------------------------

def test_the_script_calls_to_attention_reads_the_notice_twice_and_signs_with_the_spoken_date(
        cfg: Settings) -> None:
    text = txt(cfg, notice())
    assert text.startswith("各位村民请注意！各位村民请注意！\n")
    assert "现在播送联合村村民委员会的通知：疫苗接种通知。" in text
    assert text.count("本周六（1月7日）上午9:00-11:30在村委会接种疫苗") == 2
    assert text.count("下面再播送一遍。") == 1
    assert text.rstrip().endswith("联合村村民委员会\n二零二三年一月五日")


def test_the_number_of_readings_comes_from_the_setting_or_the_render(cfg: Settings) -> None:
    assert txt(cfg.with_overrides(broadcast_repeat=3), notice()).count("气温-15°C") == 3
    assert txt(cfg, notice(), repeat=1).count("气温-15°C") == 1
    assert "再播送" not in txt(cfg, notice(), repeat=1)
    with pytest.raises(ValueError):
        txt(cfg, notice(), repeat=0)


def test_a_title_that_is_only_the_first_words_of_the_body_is_not_announced_twice(
        cfg: Settings) -> None:
    text = txt(cfg, notice(title="本周六", body="本周六接种疫苗。"))
    assert "的通知。" in text and "通知：本周六" not in text


def test_a_community_is_addressed_as_residents_and_a_town_signs_as_its_government(
        cfg: Settings) -> None:
    community = txt(cfg, notice(village="胜利社区"))
    assert community.startswith("各位居民请注意！") and "胜利社区居民委员会" in community
    town = txt(cfg, notice(village="归流河镇", village_id="", village_ids=("v1", "v2")))
    assert "归流河镇人民政府" in town


def test_an_english_script_uses_the_english_wording(cfg: Settings) -> None:
    text = txt(cfg, notice(language="en", title="Vaccination", body="Vaccination on Saturday."))
    assert text.startswith("Attention please, everyone!")
    assert text.count("Vaccination on Saturday.") == 2
    assert "the 联合村 village committee, the 5th of January, 2023." in text


def test_a_village_can_override_the_wording_with_its_own_template(cfg: Settings,
                                                                   tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    own = templates / "villages" / "联合村" / "broadcast" / "zh"
    own.mkdir(parents=True)
    (own / "committee.txt").write_text("联合村党群服务中心\n", encoding="utf-8")
    text = txt(cfg.with_overrides(templates_dir=templates), notice())
    assert "现在播送联合村党群服务中心的通知" in text
    assert "团结村村民委员会" in txt(cfg.with_overrides(templates_dir=templates),
                                     notice(village="团结村"))


# --- html: the print page ------------------------------------------------------------------

def test_the_print_page_shows_village_date_title_body_and_closing_in_large_type(
        cfg: Settings) -> None:
    doc = html(cfg, notice())
    assert '<html lang="zh-CN">' in doc
    assert "联合村 通知" in doc and "2023年1月5日 星期四" in doc
    assert "<h1>疫苗接种通知</h1>" in doc
    assert ('<p>气温-15°C，请注意保暖。有问题请拨打孙玉梅电话<span class="nobr">13800000001</span>。</p>'
            in doc)  # a phone number never breaks across two lines
    assert ".nobr { white-space: nowrap; }" in doc
    assert "联合村村民委员会" in doc and "广播员请连续播读 2 遍。" in doc
    sizes = [float(s) for s in re.findall(r"body \{[^}]*font-size: (\d+)pt", doc)]
    assert sizes and min(sizes) >= 28
    assert "color: #000" in doc and "background: #fff" in doc


def test_the_print_page_is_one_file_with_no_external_assets(cfg: Settings) -> None:
    doc = html(cfg, notice())
    for outside in ("<link", "<script", "src=", "url(", "http://", "https://", "@import"):
        assert outside not in doc


def test_the_print_button_appears_only_when_opened_from_the_dashboard(cfg: Settings) -> None:
    assert "window.print()" not in html(cfg, notice())
    with_button = broadcast.render(cfg, notice(), "html", dashboard=True).decode()
    assert 'onclick="window.print()"' in with_button and ">打印</button>" in with_button
    assert "@media print { .toolbar { display: none; } }" in with_button


def test_the_page_sets_a5_or_a4_paper_with_type_never_below_28pt(cfg: Settings) -> None:
    prepared = script.prepare(cfg, notice())
    a5 = page.render(cfg, prepared, paper="A5", for_pdf=True)
    assert "size: A5;" in a5 and "font-size: 28pt;" in a5
    a4 = page.render(cfg, prepared, paper="A4", for_pdf=True)
    assert "size: A4;" in a4 and "font-size: 32pt;" in a4
    assert 'font-family: "WenQuanYi Zen Hei";' in a4
    with pytest.raises(ValueError):
        page.render(cfg, prepared, paper="Letter")


def test_text_in_a_notice_is_escaped_on_the_page(cfg: Settings) -> None:
    doc = html(cfg, notice(title="<b>通知</b>", body="请带<script>alert(1)</script>身份证"))
    assert "<script>" not in doc and "&lt;script&gt;" in doc and "&lt;b&gt;" in doc


# --- pdf -----------------------------------------------------------------------------------

def pdf_text(data: bytes, tmp_path: Path) -> str:
    require_tool("pdftotext", "poppler-utils")
    path = tmp_path / "notice.pdf"
    path.write_bytes(data)
    done = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                          text=True, check=True)
    return done.stdout


def test_the_pdf_holds_the_page_in_the_named_chinese_font(cfg: Settings, tmp_path: Path) -> None:
    data = broadcast.render(cfg, notice(), "pdf")
    assert data.startswith(b"%PDF-")
    text = pdf_text(data, tmp_path)
    flat = "".join(text.split())
    for expected in ("联合村通知", "2023年1月5日星期四", "疫苗接种通知", "各位村民请注意！",
                     "60岁以上老人请带好身份证", "孙玉梅电话13800000001", "联合村村民委员会"):
        assert expected in flat
    reader = PdfReader(io.BytesIO(data))
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (595, 842)  # A4 in points
    fonts = {str(f["/BaseFont"]) for p in reader.pages
             for f in p["/Resources"]["/Font"].values()}  # type: ignore[index]
    assert fonts and all("WenQuanYi" in f for f in fonts)


def test_an_a5_pdf_is_a5_and_a_long_notice_breaks_onto_further_pages(cfg: Settings,
                                                                     tmp_path: Path) -> None:
    long_body = "\n".join(f"第{i}条：请各户按时到村委会领取防疫物资，不要聚集。" for i in range(1, 16))
    data = broadcast.render(cfg, notice(body=long_body), "pdf", paper="A5")
    reader = PdfReader(io.BytesIO(data))
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (420, 595)
    assert len(reader.pages) >= 3
    last = reader.pages[-1].extract_text()
    assert "联合村村民委员会" in "".join(last.split())
    text = "".join(pdf_text(data, tmp_path).split())
    assert all(f"第{i}条" in text for i in range(1, 16))


def test_a_missing_chinese_font_is_named_with_its_debian_package() -> None:
    with pytest.raises(MissingPackage) as caught:
        pdf.render("<p>通知</p>", font="No Such Font 测试")
    assert "apt-get install fonts-wqy-zenhei" in str(caught.value)
    assert '"No Such Font 测试" is not installed' in str(caught.value)


class _NoPango(importlib.abc.MetaPathFinder):
    """Makes `import weasyprint` fail as it does on a machine without pango."""

    def find_spec(self, name: str, path: object, target: object = None) -> None:
        if name == "weasyprint":
            raise OSError("cannot load library 'libpango-1.0-0': no such file")


def test_missing_pango_names_the_debian_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "weasyprint" or m.startswith("weasyprint.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_NoPango(), *sys.meta_path])
    with pytest.raises(MissingPackage) as caught:
        pdf.render("<p>通知</p>")
    assert "apt-get install libpango-1.0-0 libpangoft2-1.0-0" in str(caught.value)


# --- wav -----------------------------------------------------------------------------------

def wav_seconds(data: bytes) -> tuple[wave._wave_params, float]:
    with wave.open(io.BytesIO(data)) as w:
        return w.getparams(), w.getnframes() / w.getframerate()


def test_the_audio_is_a_mono_16_bit_wav_as_long_as_the_words_need(cfg: Settings) -> None:
    require_tool("espeak-ng", "espeak-ng")
    once = broadcast.render(cfg, notice(), "wav", repeat=1)
    assert once[:4] == b"RIFF" and once[8:12] == b"WAVE"
    params, length = wav_seconds(once)  # the audio's length, not time taken
    assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, 22050)
    syllables = sum(1 for w in audio.pinyin(speech_text(cfg, notice(), 1)).split() if w[-1].isdigit())
    # A clear public-address pace is 2-5 syllables a second, pauses included.
    assert syllables / 5 < length < syllables / 2
    _, twice = wav_seconds(broadcast.render(cfg, notice(), "wav"))
    assert 1.6 < twice / length < 2.4


def speech_text(cfg: Settings, n: Notice, repeat: int) -> str:
    from gateway.broadcast import speech

    return speech.normalise(script.render(cfg, script.prepare(cfg, n, repeat=repeat)))


def test_an_english_notice_is_spoken_by_the_english_voice(cfg: Settings) -> None:
    require_tool("espeak-ng", "espeak-ng")
    data = broadcast.render(cfg, notice(language="en", body="Vaccination at 09:30."), "wav")
    _, length = wav_seconds(data)
    assert 5 < length < 40


def test_missing_espeak_names_its_debian_package(monkeypatch: pytest.MonkeyPatch,
                                                 cfg: Settings) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    audio._espeak.cache_clear()
    try:
        with pytest.raises(MissingPackage) as caught:
            broadcast.render(cfg, notice(), "wav")
    finally:
        audio._espeak.cache_clear()
    assert str(
        caught.value) == "espeak-ng is not installed; install it with: apt-get install espeak-ng"


def test_an_unknown_format_is_refused(cfg: Settings) -> None:
    with pytest.raises(ValueError):
        broadcast.render(cfg, notice(), "mp3")
