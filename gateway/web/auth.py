"""The login wall in front of every page, the sessions behind it, and the login page.

The wall is app-wide and deny-by-default: any route, whoever registers it, needs a
logged-in account unless its path is one of the few public ones (the login page,
the health check, static files, and the provider webhooks, which prove themselves
with their own signatures). A request let in then has its form's CSRF token checked
(web/csrf.py) before any view runs.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from urllib.parse import urlsplit

from flask import abort, flash, g, redirect, render_template, request, session, url_for
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue

from gateway import accounts, clock
from gateway.accounts import User
from gateway.context import Hotline
from gateway.store import KEYS
from gateway.web import csrf
from gateway.web.pages import words
from gateway.web.site import SAFE_METHODS, WEBHOOK_PREFIXES, bp, hotline

# Answer without a login: each proves itself another way (a signature) or is harmless.
PUBLIC_PATHS = ("/login", "/healthz")
PUBLIC_PREFIXES = ("/static/", *WEBHOOK_PREFIXES, "/audio/")
SESSION_HOURS = 12
DEVICE_COOKIE = "hotline_device"
# The one form that takes more than 2 MB: a minute of WAV from a phone (44.1 kHz stereo) is ~10 MB.
LARGE_UPLOADS = ("/prompts/", 24 * 1024 * 1024)


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


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
    """Refuse anything but the public paths without a login; then check the form's CSRF token."""
    if request.path.startswith(LARGE_UPLOADS[0]) and request.method == "POST":
        request.max_content_length = LARGE_UPLOADS[1]  # a recording from a phone
    if not is_public(request.path):
        account = _logged_in()
        if account is None:
            if _wants_html():
                return redirect(url_for("dashboard.login", next=request.full_path.rstrip("?")))
            abort(401)
        g.user = account
    csrf.check(max_age=SESSION_HOURS * 3600)  # a token lives no longer than its session
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


def _setup(state: BlueprintSetupState) -> None:
    state.app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=SESSION_HOURS)


bp.record_once(_setup)
