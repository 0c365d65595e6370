"""`POST /twilio/status`: Twilio's delivery reports for our texts, and call status reports for the voice side.

Unknown ids answer 200 too, so Twilio stops retrying; a report seen before changes nothing.
"""

from __future__ import annotations

import importlib
import logging

from flask import Blueprint, current_app, request

from gateway import messages
from gateway.channels.twilio.signature import require_signature
from gateway.context import Hotline
from gateway.store import KEYS, SEEN_TTL, claim, unclaim

log = logging.getLogger(__name__)

bp = Blueprint("twilio_status", __name__)


@bp.post("/twilio/status")
@require_signature
def status() -> tuple[str, int]:
    hl: Hotline = current_app.extensions["hotline"]
    form = request.form
    sid = (form.get("MessageSid") or form.get("SmsSid") or "").strip()
    if sid:
        state = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
        if state and claim(hl.r, KEYS.seen("status", f"{sid}:{state}"), ttl=SEEN_TTL):
            error = " ".join(p for p in (form.get("ErrorCode", ""), form.get("ErrorMessage", "")) if p)
            try:
                found = messages.record_delivery(hl, sid, state, error=error,
                                                 mid=request.args.get("m", ""))
            except Exception:
                unclaim(hl.r, KEYS.seen("status", f"{sid}:{state}"))  # let Twilio's retry be handled
                raise
            if found is None:
                log.info("status %s for unknown message %s", state, sid)
        return "", 200
    if form.get("CallSid") and form.get("CallStatus"):
        try:
            calls = importlib.import_module("gateway.calls")
        except ModuleNotFoundError as exc:
            if exc.name != "gateway.calls":
                raise
            return "", 200  # the voice side is not installed
        calls.call_status(hl, form.to_dict())
    return "", 200
