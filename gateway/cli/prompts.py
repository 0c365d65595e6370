"""`hotline prompts list|add|remove`: the recorded prompts kept under HOTLINE_DATA_DIR/prompts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from gateway import prompt_store
from gateway.cli.common import hotline, settings, village_name
from gateway.prompt_audio import AudioRefused
from gateway.prompts import LANGUAGES

LANGUAGE = click.Choice(LANGUAGES)
VILLAGE_HELP = "a village's name as in the registry, or its id (default: hotline-wide)"


@click.group("prompts")
def prompts_group() -> None:
    """Recorded prompts (a village's own voice, Mongolian, ...)."""


@prompts_group.command("list")
@click.option("--language", type=LANGUAGE, help="only this language")
@click.option("--village", help=VILLAGE_HELP)
@click.option("--json", "as_json", is_flag=True, help="one JSON array")
def list_command(language: str | None, village: str | None, as_json: bool) -> None:
    """Every prompt with its Mandarin words and, per language, village, global or none."""
    languages = (language,) if language else LANGUAGES
    rows = prompt_store.rows(settings(), languages, village_name(hotline(), village) if village else "")
    if as_json:
        click.echo(json.dumps([r.to_json() for r in rows], ensure_ascii=False, indent=1))
        return
    by_name: dict[str, list[prompt_store.Row]] = {}
    for row in rows:
        by_name.setdefault(row.name, []).append(row)
    click.echo(f"{'name':<22} " + " ".join(f"{lang:<8}" for lang in languages) + " words")
    for name, found in by_name.items():
        marks = " ".join(f"{r.recording:<8}" for r in found)
        click.echo(f"{name:<22} {marks} {found[0].text}")


def _fail(exc: AudioRefused) -> None:
    click.echo(f"hotline: {exc}; nothing changed", err=True)
    sys.exit(1)


@prompts_group.command("add")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--language", type=LANGUAGE, required=True)
@click.option("--village", help=VILLAGE_HELP)
def add_command(name: str, file: Path, language: str, village: str | None) -> None:
    """Check, trim, normalise and keep FILE (WAV, MP3, AMR or M4A) as the recording of NAME."""
    where = village_name(hotline(), village) if village else ""
    try:
        seconds = prompt_store.add(settings(), name, file, language, where)
    except AudioRefused as exc:
        _fail(exc)
    except OSError as exc:
        _fail(AudioRefused(f"cannot read {file}: {exc.strerror}", "missing"))
    else:
        click.echo(f"{name} ({language}, {where or 'hotline-wide'}): {seconds:.1f} s kept")


@prompts_group.command("remove")
@click.argument("name")
@click.option("--language", type=LANGUAGE, required=True)
@click.option("--village", help=VILLAGE_HELP)
def remove_command(name: str, language: str, village: str | None) -> None:
    """Remove the stored recording of NAME (the prompt falls back as before)."""
    where = village_name(hotline(), village) if village else ""
    try:
        gone = prompt_store.remove(settings(), name, language, where)
    except AudioRefused as exc:
        _fail(exc)
    if not gone:
        click.echo(f"hotline: no stored recording of {name} ({language}, "
                   f"{where or 'hotline-wide'})", err=True)
        sys.exit(1)
    click.echo(f"{name} ({language}, {where or 'hotline-wide'}): removed")


commands = [prompts_group]
