"""What the SIP agent plays: <Say> spoken by the broadcast voice and <Play> files, as 8 kHz WAVs, made once.

A call must not wait for espeak-ng or a download twice: each text (by language) and each URL is
turned into a telephone-rate WAV once and kept under the data folder; later calls play the file,
and calls that want the same new file at the same moment wait for the one making it (eight
callers read their codes at once: one espeak-ng run per digit, not eight). Runs in the agent's
pool, never on the SIP engine's thread.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
import struct
import subprocess
import tempfile
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import requests

from gateway.broadcast import audio

log = logging.getLogger(__name__)

RATE = 8000
VERSION = "1"  # change when the voice or its settings change: old files are not reused
LANGUAGES = {"zh-CN": "zh", "zh": "zh", "cmn": "zh", "en": "en", "en-US": "en", "en-GB": "en"}


@dataclass(frozen=True)
class Clip:
    path: Path
    seconds: float


@lru_cache(maxsize=4096)
def seconds_of(path: Path) -> float:
    """A cached prompt's length; the files never change once made (their names are hashes)."""
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / float(wav.getframerate() or RATE)


def finished(path: Path, wait: float = 3.0) -> bool:
    """Whether the recorder has closed `path`: a WAV being written carries zero sizes in its
    header until it is closed. Waits up to `wait` seconds (the bridge closes it within a tick)."""
    deadline = time.monotonic() + wait
    while True:
        with open(path, "rb") as fh:
            head = fh.read(8)
        if len(head) == 8 and struct.unpack("<I", head[4:8])[0] > 0:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


class Media:
    def __init__(self, folder: Path, session: requests.Session | None = None,
                 local: Callable[[str], Path | None] | None = None) -> None:
        self.folder = folder
        self.session = session or requests.Session()
        self.local = local  # a <Play> URL to a file already at 8 kHz on this box, if it is one
        self._making: dict[Path, threading.Lock] = {}
        self._guard = threading.Lock()
        folder.mkdir(parents=True, exist_ok=True)

    def _cached(self, key: str) -> Path:
        return self.folder / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.wav"

    def _once(self, path: Path, make: Callable[[], None]) -> bool:
        """Run `make` unless `path` is there, one thread at a time per file; whether it is there."""
        if path.exists():
            return True
        with self._guard:
            lock = self._making.setdefault(path, threading.Lock())
        with lock:
            if not path.exists():
                make()
        with self._guard:
            self._making.pop(path, None)  # made (or failed: the next call tries again)
        return path.exists()

    def say(self, text: str, language: str = "zh-CN") -> Clip | None:
        """The text spoken by the broadcast voice (espeak-ng, pinyin for Mandarin); None if empty."""
        if not text.strip():
            return None
        lang = LANGUAGES.get(language, "zh")
        path = self._cached(f"say|{VERSION}|{lang}|{text}")
        self._once(path, lambda: self._store(path, audio.render(text, lang), ".wav"))
        return Clip(path, seconds_of(path))

    def play(self, url: str) -> Clip | None:
        """A recorded prompt fetched once from `url` (WAV or MP3, any rate), as 8 kHz mono; a
        village's recording kept on this box is played from its own 8 kHz form."""
        own = self.local(url) if self.local is not None else None
        if own is not None:
            try:
                with wave.open(str(own), "rb") as wav:
                    return Clip(own, wav.getnframes() / float(wav.getframerate() or RATE))
            except (OSError, wave.Error, EOFError):
                log.warning("<Play> %s: its 8 kHz file cannot be read; fetched instead", url)
        path = self._cached(f"play|{VERSION}|{url}")

        def fetch() -> None:
            response = self.session.get(url, timeout=10)
            if response.status_code != 200:
                log.warning("<Play> %s: HTTP %s; skipped", url, response.status_code)
                return
            suffix = ".mp3" if url.lower().endswith(".mp3") or "mpeg" in \
                response.headers.get("Content-Type", "") else ".wav"
            try:
                self._store(path, response.content, suffix)
            except RuntimeError as exc:
                log.warning("<Play> %s: %s; skipped", url, exc)

        if not self._once(path, fetch):
            return None
        return Clip(path, seconds_of(path))

    def beep(self) -> Clip:
        """The tone before a recording (Twilio's playBeep): 1 kHz, a third of a second."""
        path = self.folder / f"beep-{VERSION}.wav"
        if not path.exists():
            frames = b"".join(struct.pack("<h", int(12000 * math.sin(2 * math.pi * 1000 * i / RATE)))
                              for i in range(RATE // 3))
            self._write(path, frames)
        return Clip(path, seconds_of(path))

    def _write(self, path: Path, frames: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        os.close(fd)
        with wave.open(tmp, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(RATE)
            wav.writeframes(frames)
        os.replace(tmp, path)

    def _store(self, path: Path, data: bytes, suffix: str) -> None:
        """Convert `data` to 8 kHz mono 16-bit with sox, then put it in place at once."""
        sox = shutil.which("sox")
        if sox is None:
            raise RuntimeError("sox is not installed (apt install sox)")
        with tempfile.TemporaryDirectory(dir=self.folder) as tmp:
            source = Path(tmp) / f"in{suffix}"
            source.write_bytes(data)
            out = Path(tmp) / "out.wav"
            done = subprocess.run([sox, str(source), "-r", str(RATE), "-c", "1", "-b", "16",
                                   "-e", "signed-integer", str(out)],
                                  capture_output=True, timeout=60, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"sox could not read it: {done.stderr.decode(errors='replace')[-200:]}")
            os.replace(out, path)
