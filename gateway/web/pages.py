"""What every page can use: its words (templates/web/i18n), the filters and the page context."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from flask import flash, g
from flask.blueprints import BlueprintSetupState

from gateway import clock, registry, tickets
from gateway.phones import mask, spoken_digits
from gateway.texts import labels
from gateway.web.site import bp, hotline


@lru_cache(maxsize=4)
def _words(folder: str, language: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (Path(folder) / "web" / "i18n" / f"{language}.json").read_text(encoding="utf-8"))
    return data


def words() -> dict[str, Any]:
    """Every word of the pages (templates/web/i18n/<HOTLINE_LANGUAGE>.json)."""
    s = hotline().settings
    return _words(str(s.templates_dir), s.language)


def say(key: str, kind: str = "ok", **values: object) -> None:
    """Flash one of the page words (templates/web/i18n), filled in."""
    flash(str(words()["flash"][key]).format(**values), kind)


def _ago(ts: float | None) -> str:
    if not ts:
        return ""
    w = words()["ago"]
    seconds = max(0, int(clock.timestamp() - ts))
    if seconds < 60:
        return str(w["now"])
    if seconds < 3600:
        return str(w["minutes"]).format(n=seconds // 60)
    if seconds < 86400:
        return str(w["hours"]).format(n=seconds // 3600)
    return str(w["days"]).format(n=seconds // 86400)


def _when(ts: float | str | None, fmt: str = "%m-%d %H:%M") -> str:
    if ts in (None, ""):
        return ""
    assert ts is not None
    return clock.from_timestamp(ts).astimezone(hotline().settings.tz).strftime(fmt)


def who(value: str) -> str:
    """A history entry's actor as people know it: a registered name, else the number or account."""
    if not value:
        return ""
    if value == "system":
        return str(words()["system"])
    if value.startswith("+"):
        person = registry.person(hotline().r, value)
        return person.name if person else spoken_digits(value)
    return value


def _minutes(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds / 60:.0f}"


def _setup(state: BlueprintSetupState) -> None:
    filters = state.app.jinja_env.filters
    filters["ago"] = _ago
    filters["when"] = _when
    filters["who"] = who
    filters["phone"] = spoken_digits
    filters["masked"] = mask
    filters["minutes"] = _minutes


bp.record_once(_setup)


@bp.app_context_processor
def _page_context() -> dict[str, Any]:
    hl = hotline()
    return {"w": words(), "labels": labels(hl.settings), "current": g.get("user"),
            "simulator_on": hl.settings.simulator, "language": hl.settings.language,
            "STATUSES": tickets.STATUSES, "CATEGORIES": tickets.CATEGORIES}
