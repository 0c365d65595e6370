"""Adding, replacing, removing and listing the recorded prompts kept under HOTLINE_DATA_DIR/prompts.

Used alike by `hotline prompts`, the dashboard's 录音 page and recording by phone. A change is
all or nothing: a refused file leaves every recording as it was; both forms of a good one are
put in place, then the stamp is touched so cached call answers notice at once.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gateway import prompt_audio, prompts
from gateway.prompt_audio import AudioRefused
from gateway.settings import Settings


@dataclass(frozen=True)
class Row:
    """One prompt in one language: its words, and which recording a caller would get."""

    name: str
    text: str
    language: str
    recording: prompts.Where
    stored: bool  # the recording is one kept under the data folder (else shipped, or none)
    url: str = ""  # under /audio/, for listening

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "text": self.text, "language": self.language,
                "recording": self.recording, "stored": self.stored, "url": self.url}


def check(name: str, language: str, village: str = "") -> None:
    """Refuse (AudioRefused) a prompt name, language or village folder that cannot be stored."""
    if name not in prompts.NAMES:
        raise AudioRefused(f"no prompt {name!r} (see `hotline prompts list`)", "bad_name")
    if language not in prompts.LANGUAGES:
        raise AudioRefused(f"no language {language!r} (one of {', '.join(prompts.LANGUAGES)})",
                           "bad_language")
    if village and (village.startswith(".") or any(c in village for c in "/\\\0")):
        raise AudioRefused(f"village name {village!r} cannot name a folder", "bad_village")


def folder(settings: Settings, language: str, village: str = "") -> Path:
    root = prompts.data_root(settings)
    return (root / "villages" / village / language) if village else (root / language)


def _touch(settings: Settings) -> None:
    stamp = prompts.data_root(settings) / prompts.STAMP
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.touch()


def add(settings: Settings, name: str, source: Path, language: str, village: str = "") -> float:
    """Store `source` as the recording of `name` (replacing any); its seconds after trimming."""
    check(name, language, village)
    target = folder(settings, language, village)
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target, prefix=".new-") as work:
        done = prompt_audio.convert(source, Path(work))
        os.replace(done.wav, target / f"{name}.wav")
        os.replace(done.mp3, target / f"{name}.mp3")
    _touch(settings)
    return done.seconds


def remove(settings: Settings, name: str, language: str, village: str = "") -> bool:
    """Remove the stored recording of `name`; False when there was none."""
    check(name, language, village)
    target = folder(settings, language, village)
    gone = False
    for ext in ("mp3", "wav"):
        try:
            (target / f"{name}.{ext}").unlink()
            gone = True
        except FileNotFoundError:
            pass
    if gone:
        _touch(settings)
    return gone


def rows(settings: Settings, languages: tuple[str, ...] = prompts.LANGUAGES,
         village: str = "") -> list[Row]:
    """Every prompt, per language: a recording of the village, a hotline-wide one, or none."""
    out = []
    for entry in prompts.CATALOGUE:
        text = prompts.words(settings, entry.name, village)
        for language in languages:
            found = prompts.find(settings, language, entry.name, village)
            if found is None:
                out.append(Row(entry.name, text, language, "none", False))
            else:
                out.append(Row(entry.name, text, language, found.where, found.stored,
                               found.url("")))
    return out
