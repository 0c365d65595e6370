"""Error pages: our own plain page for people; the webhooks keep the bare answer the provider expects."""

from __future__ import annotations

import logging

from flask import render_template, request
from flask.typing import ResponseReturnValue
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException

from gateway.web.site import WEBHOOK_PREFIXES, bp

log = logging.getLogger(__name__)


def _providers() -> bool:
    """A webhook's or a recorded prompt's request: the provider reads the bare status."""
    return request.path.startswith(WEBHOOK_PREFIXES) or request.path.startswith("/audio/")


def _wants_json() -> bool:
    return request.is_json or request.accept_mimetypes.best == "application/json"


@bp.app_errorhandler(400)
@bp.app_errorhandler(401)
@bp.app_errorhandler(403)
@bp.app_errorhandler(404)
@bp.app_errorhandler(405)
def _error(exc: HTTPException) -> ResponseReturnValue:
    """Our own plain page for people; the webhooks keep the bare status the provider expects."""
    if _providers():
        return exc
    code = exc.code or 500
    if _wants_json():
        return {"error": exc.description if code == 400 else code}, code
    key = "csrf" if exc.description == "csrf" else str(code)
    return render_template("error.html", code=code, key=key), code


@bp.app_errorhandler(RedisError)
def _store_away(exc: RedisError) -> ResponseReturnValue:
    """Redis away: people get a plain "try again" page; webhooks keep their own handling."""
    if _providers():
        raise exc
    log.error("store unavailable on %s: %s", request.path, exc)
    if _wants_json():
        return {"error": "store"}, 503
    return render_template("error.html", code=503, key="503"), 503
