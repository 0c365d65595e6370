"""Sound files as phones make them, for tests: tones and silence in WAV, MP3, M4A and AMR."""

from __future__ import annotations

import math
import random
import struct
import subprocess
import wave
from pathlib import Path

from tests.conftest import require_tool

RATE = 16000


def tone(path: Path, seconds: float = 1.5, *, amplitude: float = 0.3, lead: float = 0.0,
         tail: float = 0.0, rate: int = RATE) -> Path:
    """A WAV: `lead` seconds of silence, a 440 Hz tone, `tail` seconds of silence."""
    frames = [0] * int(lead * rate)
    frames += [int(32767 * amplitude * math.sin(2 * math.pi * 440 * i / rate))
               for i in range(int(seconds * rate))]
    frames += [0] * int(tail * rate)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(struct.pack(f"<{len(frames)}h", *frames))
    return path


def encoded(path: Path, seconds: float = 1.5) -> Path:
    """A tone in the format `path`'s suffix names (.wav, .mp3, .m4a, .amr)."""
    if path.suffix == ".wav":
        return tone(path, seconds)
    if path.suffix == ".amr":
        # AMR-NB as phones store it: the magic, then 12.2 kbit/s frames (mode 7, 20 ms each).
        # Debian's ffmpeg decodes AMR but cannot encode it: the frames are noise, the same noise
        # every run (random ones sometimes decoded to long quiet stretches the trim cut away).
        noise = random.Random(20261203)
        frames = b"".join(b"\x3c" + noise.randbytes(31) for _ in range(int(seconds * 50)))
        path.write_bytes(b"#!AMR\n" + frames)
        return path
    ffmpeg = require_tool("ffmpeg", "ffmpeg")
    source = tone(path.with_suffix(".src.wav"), seconds)
    codec = {".mp3": "libmp3lame", ".m4a": "aac"}[path.suffix]
    subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(source), "-c:a", codec, str(path)],
                   check=True, timeout=60)
    source.unlink()
    return path


def rms(path: Path) -> float:
    """The loudness of a 16-bit WAV, 0..1."""
    with wave.open(str(path), "rb") as wav:
        data = wav.readframes(wav.getnframes())
    samples = struct.unpack(f"<{len(data) // 2}h", data)
    return math.sqrt(sum(s * s for s in samples) / max(1, len(samples))) / 32768


def seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()
