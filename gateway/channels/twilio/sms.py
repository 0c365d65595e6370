"""POST /twilio/sms: a text arrives from Twilio; the reply to its sender rides back in the TwiML."""

from __future__ import annotations

import logging
from xml.sax.saxutils import escape

from flask import Blueprint, Response, current_app, request
from twilio.twiml.messaging_response import MessagingResponse

from gateway import conversation, redis_away, spool, texts
from gateway.channels.twilio.signature import require_signature
from gateway.context import Hotline
from gateway.store import KEYS, unclaim

log = logging.getLogger(__name__)

bp = Blueprint("twilio_sms", __name__)


def twiml(reply: str | None) -> Response:
    """`<Response><Message>reply</Message></Response>`, or an empty `<Response/>`."""
    return Response(twiml_text(reply), mimetype="text/xml")


_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
_EMPTY = str(MessagingResponse())


def twiml_text(reply: str | None) -> str:
    """The document MessagingResponse writes, without building its element tree each time."""
    if not reply:
        return _EMPTY
    try:
        reply.encode("utf-8")
    except UnicodeEncodeError:  # the package turns what UTF-8 cannot carry into references
        answer = MessagingResponse()
        answer.message(reply)
        return str(answer)
    return f"{_DECLARATION}<Response><Message>{escape(reply)}</Message></Response>"


@bp.post("/twilio/sms")
@require_signature
def inbound_sms() -> Response:
    hl: Hotline = current_app.extensions["hotline"]
    try:
        return _inbound_sms(hl)
    except redis_away.AWAY:
        # Redis is away: keep the text on local disk and tell the sender it arrived.
        spool.append(hl.settings.data_dir, "sms", request.form.to_dict())
        return twiml(texts.sms(hl.settings, "spooled"))


def _inbound_sms(hl: Hotline) -> Response:
    sid = request.form.get("MessageSid") or request.form.get("SmsSid") or ""
    sender = request.form.get("From", "")
    if not sender:
        return twiml(None)
    try:
        reply = conversation.handle_text(hl, sender, request.form.get("Body", ""),
                                         channel="twilio", provider_id=sid, dedup="sms")
    except Exception:
        if sid:
            unclaim(hl.r, KEYS.seen("sms", sid))  # let Twilio's retry be handled rather than dropped
        raise
    return twiml(reply)
