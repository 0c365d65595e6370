"""Twilio's X-Twilio-Signature, checked against the URL Twilio requested: forged webhooks change nothing."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Mapping
from typing import TypeVar, cast

from flask import Response, abort, current_app, request
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


# Twilio's ids: two letters and 32 lower-case hex digits. Their exact shape is what makes the
# de-duplication sound: the signature joins names and values with no separator, so a captured
# request could move the next field's name and value into a longer `MessageSid` and stay
# signed; a sid of fixed length and alphabet cannot take in a field name (they start upper-case).
MESSAGE_SID = re.compile(r"(SM|MM)[0-9a-f]{32}")
CALL_SID = re.compile(r"CA[0-9a-f]{32}")
MESSAGE_FIELDS = ("MessageSid", "SmsSid", "SmsMessageSid")


def _message_sid_problem(form: Mapping[str, str], required: bool) -> str | None:
    given = [form[f] for f in MESSAGE_FIELDS if f in form]
    if not given:
        return "MessageSid is missing" if required else None
    if any(not MESSAGE_SID.fullmatch(v) for v in given) or len(set(given)) > 1:
        return "MessageSid is not a Twilio message id (SM or MM and 32 hex digits)"
    return None


def _call_sid_problem(form: Mapping[str, str]) -> str | None:
    if not CALL_SID.fullmatch(form.get("CallSid", "")):
        return "CallSid is not a Twilio call id (CA and 32 hex digits)"
    return None


def id_problem(path: str, form: Mapping[str, str]) -> str | None:
    """Why a signed request's ids are not Twilio's (None: they are, or it carries none)."""
    if path == "/twilio/sms":
        return _message_sid_problem(form, required=True)
    if path.startswith("/twilio/voice"):
        return _call_sid_problem(form)
    if path == "/twilio/status":
        if any(f in form for f in MESSAGE_FIELDS):
            return _message_sid_problem(form, required=True)
        if "CallSid" in form:
            return _call_sid_problem(form)
    return None


def require_signature(view: F) -> F:
    """403 for any request not signed by Twilio with TWILIO_AUTH_TOKEN; 400 (nothing changed)
    for a signed one whose MessageSid or CallSid is not of Twilio's shape."""
    @functools.wraps(view)
    def wrapper(*args: object, **kwargs: object) -> object:
        hl: Hotline = current_app.extensions["hotline"]
        if not valid_signature(hl):
            log.warning("refused %s: bad or missing X-Twilio-Signature", request.path)
            abort(403)
        problem = id_problem(request.path, request.form)
        if problem is not None:
            log.warning("refused %s: %s", request.path, problem)
            return Response(problem + "\n", status=400, mimetype="text/plain")
        return view(*args, **kwargs)

    return cast(F, wrapper)
