"""Twilio's X-Twilio-Signature, checked against the URL Twilio requested: forged webhooks change nothing."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TypeVar, cast

from flask import abort, current_app, request
from twilio.request_validator import RequestValidator

from gateway.context import Hotline

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., object])


def public_url_of_request(hl: Hotline) -> str:
    """HOTLINE_PUBLIC_URL + path + query string: the URL Twilio signed."""
    query = request.query_string.decode("latin-1")
    return hl.settings.public_url + request.path + (f"?{query}" if query else "")


def valid_signature(hl: Hotline) -> bool:
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature:
        return False
    validator = RequestValidator(hl.settings.webhook_token())
    return bool(validator.validate(public_url_of_request(hl), request.form, signature))


def require_signature(view: F) -> F:
    """403 for any request not signed by Twilio with TWILIO_AUTH_TOKEN."""
    @functools.wraps(view)
    def wrapper(*args: object, **kwargs: object) -> object:
        hl: Hotline = current_app.extensions["hotline"]
        if not valid_signature(hl):
            log.warning("refused %s: bad or missing X-Twilio-Signature", request.path)
            abort(403)
        return view(*args, **kwargs)

    return cast(F, wrapper)
