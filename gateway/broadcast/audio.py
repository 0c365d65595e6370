"""The loudspeaker script as a WAV file, spoken offline by espeak-ng, for systems that play files."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path
from xml.sax.saxutils import escape

from gateway.broadcast import MissingPackage, speech

# espeak-ng's plain `cmn` voice reads Latin letters as English; this one reads them as pinyin,
# which is what it is given (see `pinyin`).
VOICES = {"zh": "cmn-latn-pinyin", "en": "en"}
RATE = 170  # pinyin syllables a minute: about 3.3 a second with pauses, clear across a yard
PAUSE_MS = 1200  # between paragraphs, and so between the readings of the notice
_PUNCT = str.maketrans({"，": ",", "、": ",", "；": ",", "：": ",", "。": ".", "！": ".",
                        "？": "?", "“": " ", "”": " ", "‘": " ", "’": " ", "《": " ",
                        "》": " ", "（": ",", "）": ",", "…": ".", "·": " "})


_NUMERALS = {"零": "ling2", "一": "yi1", "二": "er4", "两": "liang3", "三": "san1", "四": "si4",
             "五": "wu3", "六": "liu4", "七": "qi1", "八": "ba1", "九": "jiu3", "十": "shi2",
             "百": "bai3", "千": "qian1", "万": "wan4", "亿": "yi4", "幺": "yao1"}
# Number words, and a lone 一 in a date or a time (一月, 一日, 一点整), are read by the table
# above: pypinyin's word list reads 一月 as yi2 yue4 and 十一点 as shi2 yi4 dian3.
_NUMBER_RUN = re.compile("[零一二两三四五六七八九十百千万亿幺]{2,}|一(?=[月日号])"
                         "|一(?=点(?:整|[零一二三四五六七八九十]+分))")


def _numeral(run: str) -> list[str]:
    out = []
    for i, ch in enumerate(run):
        after = run[i + 1:i + 2]
        if ch == "一" and i == 0 and after in ("百", "千", "亿"):
            out.append("yi4")  # 一百, 一千: the tone change every speaker makes
        elif ch == "一" and i == 0 and after == "万":
            out.append("yi2")
        else:
            out.append(_NUMERALS[ch])
    return out


def pinyin(text: str) -> str:
    """Hanzi as numbered pinyin (银行 -> yin2 hang2). espeak-ng's own character dictionary reads
    words with several readings wrongly (银行 as yin xing, 重新 as zhong xin, 兴安盟 as xing4
    an meng); pypinyin picks the reading by the word."""
    from pypinyin import Style, lazy_pinyin

    syllables: list[str] = []
    last = 0
    for match in _NUMBER_RUN.finditer(text):
        syllables += lazy_pinyin(text[last:match.start()], style=Style.TONE3,
                                 neutral_tone_with_five=True)
        syllables += _numeral(match.group(0))
        last = match.end()
    syllables += lazy_pinyin(text[last:], style=Style.TONE3, neutral_tone_with_five=True)
    return re.sub(r"\s+", " ", " ".join(s.translate(_PUNCT) for s in syllables)).strip()


def spoken(script_text: str, language: str) -> str:
    """The script as espeak-ng SSML: numbers written out, pinyin for Mandarin, a pause between
    paragraphs."""
    parts = []
    for paragraph in re.split(r"\n\s*\n", script_text.strip()):
        words = speech.normalise(" ".join(paragraph.split("\n")), language)
        if language == "zh":
            words = pinyin(words)
        # Every line ends as a sentence, so the voice drops and pauses where a reader would.
        words = words.rstrip() if words.rstrip().endswith((".", "?", "!")) else words + "."
        parts.append(escape(words))
    return "<speak>" + f'<break time="{PAUSE_MS}ms"/>'.join(parts) + "</speak>"


@lru_cache(maxsize=1)
def _espeak() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise MissingPackage("espeak-ng is not installed", apt="espeak-ng")
    return path


@lru_cache(maxsize=4)
def _check_voice(espeak: str, voice: str) -> None:
    listed = subprocess.run([espeak, f"--voices={voice.split('-')[0]}"], capture_output=True,
                            text=True, timeout=30, check=False)
    names = {line.split()[1] for line in listed.stdout.splitlines()[1:] if len(line.split()) > 1}
    if voice not in names:
        raise MissingPackage(f"espeak-ng has no {voice} voice", apt="espeak-ng-data")


def render(script_text: str, language: str) -> bytes:
    """WAV bytes (16-bit mono PCM, espeak-ng's 22 050 Hz) of the script read aloud."""
    espeak = _espeak()
    voice = VOICES.get(language, VOICES["zh"])
    _check_voice(espeak, voice)
    with tempfile.TemporaryDirectory(prefix="hotline-wav-") as tmp:
        out = Path(tmp) / "notice.wav"
        # A file, not --stdout: a streamed WAV carries placeholder sizes in its header.
        done = subprocess.run([espeak, "-v", voice, "-s", str(RATE), "-m", "-b", "1",
                               "-w", str(out)], input=spoken(script_text, language).encode(),
                              capture_output=True, timeout=300, check=False)
        if done.returncode != 0 or not out.exists():
            problem = done.stderr.decode(errors="replace").strip().splitlines()
            raise RuntimeError(f"espeak-ng failed: {problem[-1] if problem else done.returncode}")
        return out.read_bytes()
