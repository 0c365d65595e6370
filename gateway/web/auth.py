"""The dashboard's plumbing: the login wall in front of every page, CSRF on every form, the page words.

The wall is app-wide and deny-by-default: any route, whoever registers it, needs a
logged-in account unless its path is one of the few public ones (the login page,
the health check, static files, and the provider webhooks, which prove themselves
with their own signatures). Every POST outside the webhooks carries the session's
CSRF token, checked here before any view runs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import generate_csrf, validate_csrf  # type: ignore[import-untyped]
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException
from wtforms import ValidationError  # type: ignore[import-untyped]

from gateway import accounts, clock, registry, tickets
from gateway.accounts import User
from gateway.context import Hotline
from gateway.phones import mask, spoken_digits
from gateway.store import KEYS
from gateway.texts import labels

log = logging.getLogger(__name__)

bp = Blueprint("dashboard", __name__)

# Answer without a login: each proves itself another way (a signature) or is harmless.
PUBLIC_PATHS = ("/login", "/healthz")
PUBLIC_PREFIXES = ("/static/", "/twilio/", "/android/", "/audio/")
# Signed by the provider, not by a form: no CSRF token there.
WEBHOOK_PREFIXES = ("/twilio/", "/android/")
SESSION_HOURS = 12
DEVICE_COOKIE = "hotline_device"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# The one form that takes more than 2 MB: a minute of WAV from a phone (44.1 kHz stereo) is ~10 MB.
LARGE_UPLOADS = ("/prompts/", 24 * 1024 * 1024)


def hotline() -> Hotline:
    hl: Hotline = current_app.extensions["hotline"]
    return hl


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


@lru_cache(maxsize=4)
def _words(folder: str, language: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (Path(folder) / "web" / "i18n" / f"{language}.json").read_text(encoding="utf-8"))
    return data


def words() -> dict[str, Any]:
    """Every word of the pages (templates/web/i18n/<HOTLINE_LANGUAGE>.json)."""
    s = hotline().settings
    return _words(str(s.templates_dir), s.language)


def user() -> User:
    """The logged-in account (the wall has made sure there is one)."""
    current: User | None = g.get("user")
    if current is None:
        abort(401)
    return current


def _stamp(hl: Hotline, name: str) -> str | None:
    """A digest of the account's password hash: a new password or a deleted account ends sessions."""
    digest = accounts.password_digest(hl, name)
    return hashlib.sha256(digest.encode()).hexdigest()[:16] if digest else None


def log_in(account: User) -> None:
    """A new session, recorded in Redis for SESSION_HOURS from now (never extended by use):
    the cookie only names it, so logout or the time limit ends it for every copy of the cookie."""
    session.clear()  # a fresh session: no fixation of a session made before login
    sid = secrets.token_urlsafe(32)
    hotline().r.set(KEYS.session(sid), account.name, ex=SESSION_HOURS * 3600)
    session.permanent = True
    session["user"] = account.name
    session["sid"] = sid
    session["since"] = clock.timestamp()
    session["stamp"] = _stamp(hotline(), account.name)


def log_out() -> None:
    sid = session.get("sid")
    if isinstance(sid, str):
        hotline().r.delete(KEYS.session(sid))
    session.clear()


def _logged_in() -> User | None:
    name, sid, since = session.get("user"), session.get("sid"), session.get("since")
    if not isinstance(name, str) or not isinstance(sid, str) or len(sid) > 64:
        return None
    if not isinstance(since, (int, float)) or clock.timestamp() - since > SESSION_HOURS * 3600:
        return None
    hl = hotline()
    if hl.r.get(KEYS.session(sid)) != name:  # logged out, or past its 12 hours
        return None
    if session.get("stamp") != _stamp(hl, name):
        return None
    return accounts.get(hl, name)


def _wants_html() -> bool:
    return request.method in SAFE_METHODS and not request.path.endswith((".json", ".csv"))


@bp.before_app_request
def wall() -> ResponseReturnValue | None:
    """Refuse anything but the public paths without a login; check CSRF on every form post."""
    path = request.path
    if path.startswith(LARGE_UPLOADS[0]) and request.method == "POST":
        request.max_content_length = LARGE_UPLOADS[1]  # a recording from a phone
    if not is_public(path):
        account = _logged_in()
        if account is None:
            if _wants_html():
                return redirect(url_for("dashboard.login", next=request.full_path.rstrip("?")))
            abort(401)
        g.user = account
    if request.method not in SAFE_METHODS and not path.startswith(WEBHOOK_PREFIXES):
        token = request.form.get("csrf_token") or request.headers.get("X-CSRFToken", "")
        try:
            validate_csrf(token, time_limit=SESSION_HOURS * 3600)
        except ValidationError as exc:
            log.warning("refused %s %s: %s", request.method, path, exc)
            abort(400, description="csrf")
    return None


def safe_next(target: str | None) -> str:
    """Only a path on this site (no scheme, no host) is followed after login."""
    if target and target.startswith("/") and not target.startswith("//"):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and "\\" not in target:
            return target
    return url_for("dashboard.board")


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    if request.method == "POST":
        name = request.form.get("name", "")[:60]
        password = request.form.get("password", "")[:200]
        # remote_addr is the real client behind nginx (ProxyFix, HOTLINE_TRUSTED_PROXIES).
        device = request.cookies.get(DEVICE_COOKIE, "")
        account = accounts.authenticate(hotline(), name, password, request.remote_addr or "",
                                        device=device)
        if account is not None:
            log_in(account)
            response = redirect(safe_next(request.form.get("next")))
            # This browser is the owner's: it gets past the ceiling that guessing from many
            # addresses puts on the account (accounts.authenticate).
            response.set_cookie(DEVICE_COOKIE, accounts.new_device(hotline(), account.name),
                                max_age=accounts.DEVICE_DAYS * 86400, httponly=True,
                                samesite="Lax", path="/login",
                                secure=hotline().settings.public_url.startswith("https:"))
            return response
        flash(words()["login"]["failed"], "error")
        return render_template("login.html", next=request.form.get("next", ""), name=name), 401
    return render_template("login.html", next=request.args.get("next", ""), name="")


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    log_out()
    return redirect(url_for("dashboard.login"))


@bp.get("/")
def home() -> ResponseReturnValue:
    return redirect(url_for("dashboard.board"))


# --- headers on every answer ----------------------------------------------------------------

# Pages load only this site's scripts, styles and images; no page may be framed (clickjacking).
# Recordings play from the provider (https:). A view may set its own policy (the loudspeaker
# print page is one self-contained file with its own <style> and print button).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "media-src 'self' https:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
# The print page: its inline <style>, and its one handler (onclick="window.print()") by hash.
PRINT_PAGE_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
                  "font-src 'self'; script-src 'unsafe-hashes' "
                  "'sha256-MguIPR6qNR8D3B+eAlK+bIRTZe8t3wkOY4B/56Me9FU='; "
                  "base-uri 'none'; form-action 'none'; frame-ancestors 'self'")


@bp.after_app_request
def _headers(response: Response) -> Response:
    if request.path.startswith(WEBHOOK_PREFIXES):
        return response  # providers read XML and JSON; nothing is rendered there
    response.headers.setdefault("Content-Security-Policy", CSP)
    frames = "SAMEORIGIN" if "frame-ancestors 'self'" in response.headers[
        "Content-Security-Policy"] else "DENY"
    response.headers.setdefault("X-Frame-Options", frames)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


# --- what every page can use ----------------------------------------------------------------

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
    app = state.app
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=SESSION_HOURS)
    app.jinja_env.filters["ago"] = _ago
    app.jinja_env.filters["when"] = _when
    app.jinja_env.filters["who"] = who
    app.jinja_env.filters["phone"] = spoken_digits
    app.jinja_env.filters["masked"] = mask
    app.jinja_env.filters["minutes"] = _minutes
    app.jinja_env.globals["csrf_token"] = generate_csrf


bp.record_once(_setup)


@bp.app_context_processor
def _page_context() -> dict[str, Any]:
    hl = hotline()
    return {"w": words(), "labels": labels(hl.settings), "current": g.get("user"),
            "simulator_on": hl.settings.simulator, "language": hl.settings.language,
            "STATUSES": tickets.STATUSES, "CATEGORIES": tickets.CATEGORIES}


@bp.app_errorhandler(400)
@bp.app_errorhandler(401)
@bp.app_errorhandler(403)
@bp.app_errorhandler(404)
@bp.app_errorhandler(405)
def _error(exc: HTTPException) -> ResponseReturnValue:
    """Our own plain page for people; the webhooks keep the bare status the provider expects."""
    if request.path.startswith(WEBHOOK_PREFIXES) or request.path.startswith("/audio/"):
        return exc
    code = exc.code or 500
    if request.is_json or request.accept_mimetypes.best == "application/json":
        return {"error": exc.description if code == 400 else code}, code
    key = "csrf" if exc.description == "csrf" else str(code)
    return render_template("error.html", code=code, key=key), code


# --- which villages the account may see -----------------------------------------------------

def villages_for(account: User) -> list[registry.Village]:
    """The villages this account sees: all for an admin, its own for a head or leader."""
    hl = hotline()
    if account.is_admin:
        return registry.villages(hl.r)
    own = registry.village(hl.r, account.village_id)
    return [own] if own else []


def chosen_village(account: User, asked: str | None, *, allow_triage: bool = True) -> str | None:
    """The village id a filter asks for, limited to what the account sees (None: all it sees)."""
    if not account.is_admin:
        return account.village_id or "-"  # "-" matches nothing: an account with no village sees none
    if not asked:
        return None
    if asked == tickets.TRIAGE:
        return tickets.TRIAGE if allow_triage else None
    found = registry.find_village(hotline().r, asked)
    return found.id if found else None


def ticket_or_404(account: User, code: str) -> tickets.Ticket:
    """The ticket if this account may see it; the same 404 whether it exists or not."""
    ticket = tickets.get(hotline(), code) if code.isdigit() else None
    if ticket is None or not account.sees(ticket.village_id):
        abort(404)
    return ticket


def say(key: str, kind: str = "ok", **values: object) -> None:
    """Flash one of the page words (templates/web/i18n), filled in."""
    flash(str(words()["flash"][key]).format(**values), kind)


@bp.app_errorhandler(RedisError)
def _store_away(exc: RedisError) -> ResponseReturnValue:
    """Redis away: people get a plain "try again" page; webhooks keep their own handling."""
    if request.path.startswith(WEBHOOK_PREFIXES) or request.path.startswith("/audio/"):
        raise exc
    log.error("store unavailable on %s: %s", request.path, exc)
    if request.is_json or request.accept_mimetypes.best == "application/json":
        return {"error": "store"}, 503
    return render_template("error.html", code=503, key="503"), 503
