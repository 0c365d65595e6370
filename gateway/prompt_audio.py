"""A recording from a phone made fit to play: checked, trimmed of silence, loudness-normalised, in both forms.

Phones record WAV, MP3, AMR or M4A; ffmpeg (Debian's) reads them all. A file that cannot be
read, holds no sound, or lasts over a minute is refused with a line saying why; a good one is
trimmed of leading and trailing silence, brought to one loudness (EBU R128, as for broadcast)
and written as an MP3 for Twilio's ``<Play>`` and an 8 kHz mono 16-bit WAV for the SIP agent.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MAX_SECONDS = 60.0          # a prompt longer than a minute is not a prompt
MAX_BYTES = 20 * 1024 * 1024  # far above a minute in any format a phone makes
MIN_SECONDS = 0.2           # less sound than this after trimming: the file is silent
SILENCE = "-45dB"           # quieter than this counts as silence (a quiet room on a phone)
LOUDNESS = "loudnorm=I=-16:TP=-1.5:LRA=11"  # speech made as loud as a phone prompt should be
RATE = 16000                # the working rate: telephone speech loses nothing at it
SIP_RATE = 8000
FORMATS = "WAV, MP3, AMR or M4A"


class AudioRefused(ValueError):
    """The file is not a recording the hotline can play; the message says why, for a person, and
    `reason` is a short word the dashboard turns into its own words."""

    def __init__(self, message: str, reason: str = "failed") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Converted:
    mp3: Path       # for Twilio's <Play>
    wav: Path       # 8 kHz mono 16-bit, played as it is by the SIP agent
    seconds: float  # after trimming


def _ffmpeg() -> str:
    path = shutil.which("ffmpeg")
    if path is None:
        raise AudioRefused("ffmpeg is not installed (apt-get install ffmpeg)", "no_tool")
    return path


def _run(args: list[str], what: str, *, detail: bool = True, reason: str = "failed") -> None:
    try:
        done = subprocess.run([_ffmpeg(), "-nostdin", "-hide_banner", "-v", "error", "-y", *args],
                              capture_output=True, timeout=120, check=False)
    except subprocess.TimeoutExpired as exc:
        raise AudioRefused(f"{what}: took too long", reason) from exc
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        log.info("ffmpeg refused a recording: %s", lines[-1][:300] if lines else "?")
        raise AudioRefused(f"{what}: {lines[-1][:160]}" if detail and lines else what, reason)


def _seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / float(wav.getframerate() or RATE)


def convert(source: Path, work: Path) -> Converted:
    """Check `source` and write its two playable forms into the folder `work`."""
    if not source.is_file():
        raise AudioRefused(f"no such file: {source.name}", "missing")
    size = source.stat().st_size
    if size == 0:
        raise AudioRefused("the file is empty", "empty")
    if size > MAX_BYTES:
        raise AudioRefused(f"the file is {size // (1024 * 1024)} MB; a prompt is under a minute", "too_big")
    decoded, trimmed, level = work / "decoded.wav", work / "trimmed.wav", work / "level.wav"
    unreadable = f"it cannot be read as a recording ({FORMATS})"
    # Read at most a little over the limit: a long file is refused without decoding it all.
    _run(["-i", str(source), "-vn", "-map", "0:a:0", "-t", str(MAX_SECONDS + 1), "-ac", "1",
          "-ar", str(RATE), "-c:a", "pcm_s16le", "-f", "wav", str(decoded)], unreadable,
         detail=False, reason="unreadable")
    try:
        length = _seconds(decoded)
    except (wave.Error, EOFError, OSError) as exc:
        raise AudioRefused(unreadable, "unreadable") from exc
    if length <= 0:
        raise AudioRefused(f"{unreadable}: it holds no sound at all", "unreadable")
    if length > MAX_SECONDS:
        raise AudioRefused(f"it lasts over {MAX_SECONDS:.0f} seconds; a prompt may last a minute", "too_long")
    edge = f"silenceremove=start_periods=1:start_threshold={SILENCE}:start_silence=0.1"
    _run(["-i", str(decoded), "-af", f"{edge},areverse,{edge},areverse", "-c:a", "pcm_s16le",
          str(trimmed)], "trimming silence failed")
    seconds = _seconds(trimmed)
    if seconds < MIN_SECONDS:
        raise AudioRefused("it is silent: nothing louder than a quiet room was recorded", "silent")
    _run(["-i", str(trimmed), "-af", LOUDNESS, "-ar", str(RATE), "-ac", "1", "-c:a", "pcm_s16le",
          str(level)], "normalising loudness failed")
    mp3, wav = work / "out.mp3", work / "out.wav"
    _run(["-i", str(level), "-c:a", "libmp3lame", "-b:a", "48k", str(mp3)], "writing MP3 failed")
    _run(["-i", str(level), "-ar", str(SIP_RATE), "-ac", "1", "-c:a", "pcm_s16le", str(wav)],
         "writing the 8 kHz WAV failed")
    return Converted(mp3, wav, seconds)
