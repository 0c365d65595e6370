"""Recordings the SIP agent made (voicemails, names): taken, signed, from the agent; played on the dashboard.

The agent may run on the office box while the web runs at the county: it sends each WAV here,
signed as Twilio signs a request with a body (the URL carries the body's SHA-256), and the
ticket's recording URL points at this web's copy, which only a logged-in user can fetch.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os

from flask import Blueprint, abort, current_app, request, send_file
from flask.typing import ResponseReturnValue
from twilio.request_validator import RequestValidator

from gateway import recordings
from gateway.channels.twilio.signature import public_url_of_request
from gateway.context import Hotline

log = logging.getLogger(__name__)

bp = Blueprint("sip_recordings", __name__)



def _hl() -> Hotline:
    hl: Hotline = current_app.extensions["hotline"]
    return hl


@bp.post("/twilio/sip/recording/<sid>")
def take(sid: str) -> ResponseReturnValue:
    hl = _hl()
    signature = request.headers.get("X-Twilio-Signature", "")
    digest = request.args.get("bodySHA256", "")
    validator = RequestValidator(hl.settings.webhook_token())
    if not signature or not validator.validate(public_url_of_request(hl), {}, signature):
        log.warning("refused a recording upload: bad or missing X-Twilio-Signature")
        abort(403)  # before anything else: an unsigned request learns nothing
    target = recordings.path(hl.settings, sid)
    if target is None:
        abort(400, description="not a recording sid")
    data = request.get_data(cache=False)
    if not hmac.compare_digest(hashlib.sha256(data).hexdigest(), digest):
        abort(400, description="the body is not what was signed")
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        abort(400, description="not a WAV file")
    folder = target.parent
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = folder / f".{sid}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, target)
    return "", 204


@bp.get("/recordings/<sid>.wav")
def play(sid: str) -> ResponseReturnValue:
    """Behind the login wall (not a public path): a caller's voice is not for the internet."""
    path = recordings.path(_hl().settings, sid)
    if path is None or not path.is_file():
        abort(404)
    return send_file(path, mimetype="audio/wav", max_age=0)
