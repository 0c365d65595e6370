"""The voice webhooks: Twilio posts each step of a call here and gets TwiML back."""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Blueprint, Response, abort, current_app, request, send_file
from flask.typing import ResponseReturnValue

from gateway import calls, prompts, redis_away, spool
from gateway.channels.twilio.signature import require_signature
from gateway.context import Hotline

log = logging.getLogger(__name__)

bp = Blueprint("twilio_voice", __name__)


def _hl() -> Hotline:
    hl: Hotline = current_app.extensions["hotline"]
    return hl


def _twiml(make: Callable[[], str]) -> Response:
    """TwiML from `make`; if the gateway itself fails the caller still hears a kind word."""
    try:
        body = make()
    except redis_away.AWAY:
        # Redis is away: note the call on local disk; it becomes a callback ticket on return.
        spool.append(_hl().settings.data_dir, "voice", request.form.to_dict())
        body = calls.spooled(_hl().settings)
    except Exception:
        log.exception("voice step failed on %s", request.path)
        body = calls.failure(_hl().settings)
    return Response(body, mimetype="text/xml")


@bp.post("/twilio/voice")
@require_signature
def answer() -> ResponseReturnValue:
    form = request.form.to_dict()
    return _twiml(lambda: calls.answer(_hl(), form))


@bp.post("/twilio/voice/recording")
@require_signature
def recording() -> ResponseReturnValue:
    """Twilio's recordingStatusCallback: the audio of a <Record> is ready."""
    calls.recording(_hl(), request.form.to_dict())
    return Response("<Response/>", mimetype="text/xml")


@bp.post("/twilio/voice/<stage>")
@require_signature
def step(stage: str) -> ResponseReturnValue:
    form = request.form.to_dict()
    number = request.args.get("step", "")
    return _twiml(lambda: calls.step(_hl(), stage, number, form))


@bp.get("/audio/<path:name>")
def audio(name: str) -> ResponseReturnValue:
    """A recorded prompt that <Play> points at (the data folder's, else templates/audio); public."""
    path = prompts.audio_file(_hl().settings, name)
    if path is None:
        abort(404)
    mimetype = "audio/mpeg" if path.suffix == ".mp3" else "audio/wav"
    return send_file(path, mimetype=mimetype, max_age=3600)
