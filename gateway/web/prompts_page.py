"""The 录音 page: every prompt with its Mandarin words per language, recorded or not; upload, remove.

A village head edits their own village's recordings; an admin edits the hotline-wide set (and
may look at any village's). Everyone else only listens. The upload goes through the same
checks as `hotline prompts add`: a refused file changes nothing.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from flask import abort, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from gateway import accounts, prompt_store, prompts, registry
from gateway.accounts import AccountError, User
from gateway.phones import mask, try_normalise
from gateway.prompt_audio import AudioRefused
from gateway.web.auth import LARGE_UPLOADS, user
from gateway.web.pages import say, words
from gateway.web.scope import villages_for
from gateway.web.site import bp, hotline


@dataclass(frozen=True)
class Scope:
    """Whose set of recordings the page shows, and whether this account may change it."""

    village: str  # "" for the hotline-wide set
    editable: bool


def _scope(account: User, asked: str | None) -> Scope:
    if account.is_admin:
        found = registry.find_village(hotline().r, asked) if asked else None
        return Scope(found.name if found else "", editable=found is None)
    own = villages_for(account)
    if not own:
        abort(404)
    return Scope(own[0].name, editable=account.role == "head")


def _language(raw: str | None) -> str:
    return raw if raw in prompts.LANGUAGES else hotline().settings.language


def _back(language: str, village: str) -> ResponseReturnValue:
    return redirect(url_for("dashboard.prompt_list", language=language, village=village or None))


@bp.get("/prompts")
def prompt_list() -> ResponseReturnValue:
    account = user()
    scope = _scope(account, request.args.get("village"))
    language = _language(request.args.get("language"))
    settings = hotline().settings
    rows = prompt_store.rows(settings, (language,), scope.village)
    heard = {r.name: prompts.heard(settings, language, r.name, scope.village) for r in rows}
    own = {r.name for r in rows if r.stored and (r.recording == "village") == bool(scope.village)}
    recorder = account.role in ("admin", "head")
    phone = accounts.recorder_phone(hotline(), account.name) if recorder else ""
    return render_template("prompts.html", rows=rows, heard=heard, own=own, scope=scope,
                           language=language, recorder=recorder, recorder_phone=phone,
                           languages=prompts.LANGUAGES, villages=villages_for(account),
                           max_mb=LARGE_UPLOADS[1] // (1024 * 1024))


def _editing() -> tuple[Scope, str]:
    """The set a form changes (its village, its language); 403 unless the account may."""
    scope = _scope(user(), request.form.get("village"))
    if not scope.editable:
        abort(403)
    return scope, _language(request.form.get("language"))


@bp.post("/prompts/<name>")
def prompt_upload(name: str) -> ResponseReturnValue:
    scope, language = _editing()
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        say("prompt_refused", "error", name=name, reason=_reason("empty"))
        return _back(language, scope.village)
    settings = hotline().settings
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.data_dir, prefix=".upload-") as work:
        source = Path(work) / "upload"
        upload.save(source)
        try:
            seconds = prompt_store.add(settings, name, source, language, scope.village)
        except AudioRefused as exc:
            say("prompt_refused", "error", name=name, reason=_reason(exc.reason))
        else:
            say("prompt_saved", name=name, seconds=f"{seconds:.1f}")
    return _back(language, scope.village)


@bp.post("/prompts/<name>/delete")
def prompt_delete(name: str) -> ResponseReturnValue:
    scope, language = _editing()
    try:
        gone = prompt_store.remove(hotline().settings, name, language, scope.village)
    except AudioRefused as exc:
        say("prompt_refused", "error", name=name, reason=_reason(exc.reason))
    else:
        if gone:
            say("prompt_removed", name=name)
    return _back(language, scope.village)


@bp.post("/prompts/phone")
def prompt_phone() -> ResponseReturnValue:
    """The number and PIN this account records prompts by phone with (ivr.studio)."""
    account = user()
    hl = hotline()
    phone = try_normalise(request.form.get("phone", "")[:40], hl.settings.default_region)
    reasons: dict[str, str] = words()["prompts"]["by_phone"]["reasons"]
    try:
        if phone is None:
            raise AccountError("bad_phone")
        accounts.set_recorder(hl, account.name, phone, request.form.get("pin", "").strip()[:12])
    except AccountError as exc:
        say("phone_refused", "error", reason=reasons.get(exc.reason, exc.reason))
    else:
        say("phone_saved", phone=mask(phone))
    return _back(_language(request.form.get("language")), "")


def _reason(key: str) -> str:
    reasons: dict[str, str] = words()["prompts"]["reasons"]
    return reasons.get(key, reasons["failed"])
