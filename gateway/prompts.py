"""Recorded prompts: which recording stands in for a prompt, per language and village, and where it lives.

A recording is looked up in the data folder (``HOTLINE_DATA_DIR/prompts/``, what villages
record: kept with the data and its backup) before the shipped defaults (``templates/audio/``),
each laid out alike::

    <lang>/<name>.mp3|wav                       every caller of that language
    villages/<村名>/<lang>/<name>.mp3|wav         callers of that village (looked up first)

A stored recording has two forms side by side: ``<name>.mp3`` for Twilio's ``<Play>`` and
``<name>.wav`` (8 kHz mono 16-bit) that the SIP agent plays as it is. A language without
spoken texts of its own (``mn``: no synthesiser speaks it) falls back prompt by prompt to the
hotline's language, recordings first: a caller never hears silence.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

from gateway import texts
from gateway.settings import Settings
from ivr.machine import CATEGORIES

LANGUAGES = ("zh", "mn", "en")  # a caller's language (the ledger's 语言); the hotline's is zh or en
AUDIO_EXTENSIONS = ("mp3", "wav")
STAMP = ".stamp"  # touched on every change under the data folder, so cached answers notice

Where = Literal["village", "global", "none"]


@dataclass(frozen=True)
class Entry:
    """One recordable prompt: its name and the template (with context) that gives its words."""

    name: str
    template: str
    context: tuple[tuple[str, str], ...] = ()


def _catalogue() -> tuple[Entry, ...]:
    entries = [Entry("emergency", "emergency"), Entry("language_offer", "language_offer"),
               Entry("greeting", "greeting", (("place", ""),)), Entry("menu", "menu")]
    entries += [Entry(f"confirm_{c}", "confirm", (("category", c),)) for c in CATEGORIES]
    entries += [Entry(n, n) for n in ("no_key", "wrong_key", "sorry")]
    entries += [Entry("ask_name", "ask_name", (("number", "yes"),)), Entry("voicemail", "voicemail")]
    entries += [Entry(f"received_{c}", "received", (("category", c),))
                for c in (*CATEGORIES, "voicemail", "callback")]
    entries += [Entry("code_is", "code_is")]
    entries += [Entry(f"digit_{d}", "digit", (("d", str(d)),)) for d in range(10)]
    entries += [Entry(n, n) for n in ("code_again", "code_texted", "goodbye", "time_up",
                                      "failure", "spooled")]
    return tuple(entries)


CATALOGUE = _catalogue()
NAMES = {e.name: e for e in CATALOGUE}


def data_root(settings: Settings) -> Path:
    return settings.data_dir / "prompts"


def _roots(settings: Settings) -> tuple[tuple[Path, bool], ...]:
    """(folder, stored with the data) in the order they are looked up."""
    return ((data_root(settings), True), (settings.templates_dir / "audio", False))


def speaks(settings: Settings, language: str) -> bool:
    """Whether `language` has spoken texts of its own (templates/voice/<lang>/)."""
    return language in texts.SPOKEN and (settings.templates_dir / "voice" / language).is_dir()


def spoken_language(settings: Settings, language: str) -> str:
    """The language a prompt without a recording is said in: the caller's, else the hotline's."""
    return language if speaks(settings, language) else settings.language


def heard_languages(settings: Settings, language: str) -> tuple[str, ...]:
    """Whose recordings a caller of `language` may hear, in order (mn: mn, then Mandarin's)."""
    lang = language if language in LANGUAGES else settings.language
    return (lang,) if speaks(settings, lang) else tuple(dict.fromkeys((lang, settings.language)))


@dataclass(frozen=True)
class Found:
    """A recording standing in for a prompt: its path under /audio/, file, and level."""

    rel: str
    path: Path
    where: Where
    stored: bool  # under the data folder (else shipped in templates/audio)

    def url(self, base_url: str) -> str:
        """Where <Play> fetches it; a stored file's URL changes when it is replaced."""
        url = f"{base_url}/audio/{quote(self.rel)}"
        return f"{url}?v={self.path.stat().st_mtime_ns}" if self.stored else url


def find(settings: Settings, language: str, name: str, village: str = "", *,
         local: bool = False) -> Found | None:
    """The recording of `name` in `language`: the village's first, then (unless `local`) the
    hotline-wide one; at each level the data folder's before the shipped default."""
    levels: list[tuple[Where, Path, bool, str]] = []
    for root, stored in _roots(settings):
        own = texts.village_folder(root / "villages", village)  # the listed name, never the ledger's
        if own is not None:
            levels.append(("village", root, stored, f"villages/{own}/{language}"))
    if not local:
        levels += [("global", root, stored, language) for root, stored in _roots(settings)]
    for where, root, stored, folder in levels:
        for ext in AUDIO_EXTENSIONS:
            rel = f"{folder}/{name}.{ext}"
            path = root / rel
            if path.is_file():
                return Found(rel, path, where, stored)
    return None


def heard(settings: Settings, language: str, name: str, village: str = "", *,
          local: bool = False) -> Found | None:
    """What a caller of `language` hears for `name`: theirs, else the fallback language's."""
    for lang in heard_languages(settings, language):
        found = find(settings, lang, name, village, local=local)
        if found is not None:
            return found
    return None


def audio_file(settings: Settings, rel: str) -> Path | None:
    """The file behind an /audio/<rel> URL: only recordings under the two roots, nothing else."""
    parts = rel.split("/")
    if not all(p and "\\" not in p and p not in (".", "..") for p in parts):
        return None
    if parts[-1].rsplit(".", 1)[-1] not in AUDIO_EXTENSIONS:
        return None
    for root, _ in _roots(settings):
        base = root.resolve()
        path = base.joinpath(*parts).resolve()
        if path.is_relative_to(base) and path.is_file():
            return path
    return None


def sip_file(settings: Settings, url: str) -> Path | None:
    """The 8 kHz WAV kept beside a stored recording that `url` (a <Play> of ours) points at."""
    base = settings.public_url.rstrip("/") + "/audio/"
    if not url.startswith(base):
        return None
    rel = unquote(urlsplit(url).path[len(urlsplit(base).path):])
    path = audio_file(settings, rel)
    if path is None or not path.is_relative_to(data_root(settings).resolve()):
        return None
    wav = path.with_suffix(".wav")
    return wav if wav.is_file() else None


def stamp(settings: Settings) -> int:
    """Changes whenever a stored recording is added or removed (0: none ever stored)."""
    try:
        return os.stat(data_root(settings) / STAMP).st_mtime_ns
    except OSError:
        return 0


def words(settings: Settings, name: str, village: str = "") -> str:
    """A prompt's words in the hotline's language (Mandarin by default), as a caller hears them."""
    entry = NAMES[name]
    context = dict(entry.context)
    if "place" in context:
        context["place"] = village
    return texts.render(settings, "voice", entry.template, language=settings.language,
                        village=village, **context)
