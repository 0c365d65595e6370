"""CSRF: every POST outside the webhooks carries the session's token, checked before any view runs."""

from __future__ import annotations

import logging

from flask import abort, request
from flask.blueprints import BlueprintSetupState
from flask_wtf.csrf import generate_csrf, validate_csrf  # type: ignore[import-untyped]
from wtforms import ValidationError  # type: ignore[import-untyped]

from gateway.web.site import SAFE_METHODS, WEBHOOK_PREFIXES, bp

log = logging.getLogger(__name__)


def check(max_age: int) -> None:
    """Refuse (400 "csrf") a form post without a valid token no older than `max_age` seconds.

    Called by the login wall (web/auth.py) once it has let the request in.
    """
    if request.method in SAFE_METHODS or request.path.startswith(WEBHOOK_PREFIXES):
        return
    token = request.form.get("csrf_token") or request.headers.get("X-CSRFToken", "")
    try:
        validate_csrf(token, time_limit=max_age)
    except ValidationError as exc:
        log.warning("refused %s %s: %s", request.method, request.path, exc)
        abort(400, description="csrf")


def _setup(state: BlueprintSetupState) -> None:
    state.app.jinja_env.globals["csrf_token"] = generate_csrf


bp.record_once(_setup)
