"""Every word people read or hear comes from templates/ via here; SMS segments counted as Twilio does."""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, TemplateNotFound
from jinja2.sandbox import SandboxedEnvironment

from gateway.settings import Settings

# Characters that look like ASCII but force the whole SMS into UCS-2 (70 a segment).
_LOOKALIKES = {
    "\u00a0": " ", "\u2009": " ", "\u200b": "", "\u3000": " ", "\u2018": "'", "\u2019": "'",
    "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-", "\u2026": "...", "\ufeff": "",
}
GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = "^{}\\[~]|€\f"
_BLANKS = re.compile(r"[ \t]+")
SPOKEN = ("zh", "en")  # languages with labels and spoken prompts of their own
WRITTEN = ("zh", "mn", "en")  # languages an SMS template may be written in (mn: where one exists)


def clean_sms(text: str) -> str:
    """Replace look-alike characters and fold runs of blanks, keeping the text's meaning."""
    for bad, good in _LOOKALIKES.items():
        text = text.replace(bad, good)
    lines = [_BLANKS.sub(" ", line).strip() for line in text.strip().splitlines()]
    return "\n".join(line for line in lines if line)


def whole(value: Any) -> Any:
    """`value` (a string, or JSON made of dicts and lists) without halves of characters: a lone
    surrogate, which JSON from a phone can carry and no Redis key or record can encode."""
    if isinstance(value, str):
        return value if value.isascii() else value.encode("utf-8", "ignore").decode("utf-8")
    if isinstance(value, dict):
        return {whole(k): whole(v) for k, v in value.items()}
    if isinstance(value, list):
        return [whole(v) for v in value]
    return value


def is_gsm7(text: str) -> bool:
    return all(c in GSM7_BASIC or c in GSM7_EXTENDED for c in text)


def segments(text: str) -> int:
    """How many SMS segments Twilio bills for `text` (GSM-7 160/153, UCS-2 70/67)."""
    if is_gsm7(text):
        units = sum(2 if c in GSM7_EXTENDED else 1 for c in text)
        single, multi = 160, 153
    else:
        units = sum(2 if ord(c) > 0xFFFF else 1 for c in text)  # UTF-16 code units
        single, multi = 70, 67
    if units <= single:
        return 1
    return -(-units // multi)


@lru_cache(maxsize=64)
def _folders(parent: str, stamp: int) -> dict[str, str]:
    """The sub-folders of `parent`, as listed (`stamp`: the folder's mtime, so a new one shows)."""
    found: dict[str, str] = {}
    try:
        with os.scandir(parent) as entries:
            for entry in entries:
                if not entry.name.startswith(".") and entry.is_dir():
                    found[entry.name] = entry.name
    except OSError:
        pass
    return found


def village_folder(parent: Path, village: str) -> str | None:
    """The folder of `parent` (e.g. templates/villages) kept for `village`, if there is one.

    A village's name comes from the ledger, so it never becomes part of a path: it is only
    compared with the names the folder lists, and the listed name is what is used. A name like
    `/tmp/x`, `../..` or `a/b` matches no entry and gets the hotline-wide files."""
    if not village:
        return None
    try:
        stamp = os.stat(parent).st_mtime_ns
    except OSError:
        return None
    return _folders(str(parent), stamp).get(village)


@lru_cache(maxsize=16)
def _environment(root: str, folder: str) -> Environment:
    """Templates under `root`, a village's own first (`folder`: as listed by village_folder)."""
    base = Path(root)
    loaders = []
    if folder:
        loaders.append(FileSystemLoader(str(base / "villages" / folder)))
    loaders.append(FileSystemLoader(str(base)))
    # Sandboxed: a template (a village's own, written by whoever keeps the folder) reaches no
    # Python internals, whatever it asks for.
    return SandboxedEnvironment(
        loader=ChoiceLoader(loaders), undefined=StrictUndefined, keep_trailing_newline=False,
        autoescape=False, trim_blocks=True, lstrip_blocks=True,
    )


@lru_cache(maxsize=8)
def _labels(root: str, language: str) -> dict[str, Any]:
    path = Path(root) / "labels" / f"{language}.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def labels(settings: Settings, language: str | None = None) -> dict[str, Any]:
    """Names of categories, statuses and the like, in `language` (templates/labels/*.json)."""
    lang = language if language in SPOKEN else settings.language
    return _labels(str(settings.templates_dir), lang)


def render(settings: Settings, kind: str, name: str, *, language: str | None = None,
           village: str = "", **context: Any) -> str:
    """Render `templates/[villages/<village>/]<kind>/<language>/<name>.txt`.

    Falls back to the default language when a translation is missing, so an
    unfinished translation never silences a message (a text to a Mongolian speaker stays in
    Chinese unless an ``mn`` template exists).
    """
    root = settings.templates_dir
    env = _environment(str(root), village_folder(root / "villages", village) or "")
    lang = language if language in WRITTEN else settings.language
    for candidate in dict.fromkeys((lang, settings.language, "zh")):
        try:
            template = env.get_template(f"{kind}/{candidate}/{name}.txt")
        except TemplateNotFound:
            continue
        context.setdefault("labels", labels(settings, candidate))
        return template.render(**context).strip()
    raise TemplateNotFound(f"{kind}/{lang}/{name}.txt")


def sms(settings: Settings, name: str, *, language: str | None = None, village: str = "",
        **context: Any) -> str:
    """An SMS body, cleaned of characters that cost segments."""
    return clean_sms(render(settings, "sms", name, language=language, village=village, **context))


def template_names(settings: Settings, kind: str, language: str) -> list[str]:
    folder = settings.templates_dir / kind / language
    return sorted(p.stem for p in folder.glob("*.txt"))
