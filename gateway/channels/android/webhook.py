"""POST /android/webhook: every phone's signed events, told apart by key; bad signature: 403, no change."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from redis.exceptions import RedisError

from gateway import jsonsafe
from gateway.channels.android import events
from gateway.context import Hotline

log = logging.getLogger(__name__)

bp = Blueprint("android", __name__)

RETRY_AFTER = "10"  # seconds; the app retries anything but a 2xx with its own backoff anyway


@bp.post("/android/webhook")
def webhook() -> ResponseReturnValue:
    hl: Hotline = current_app.extensions["hotline"]
    body = request.get_data(cache=False)
    # Every phone of the pool posts here; the key that signed the post says which it is.
    via = events.signer(hl, body, request.headers.get("X-Timestamp", ""),
                        request.headers.get("X-Signature", ""))
    if via is None:
        if not hl.settings.android_gateway_signing_key and hl.settings.channels_file is None:
            log.warning("android webhook refused: ANDROID_GATEWAY_SIGNING_KEY is not set")
        return jsonify(error="bad signature"), 403
    try:
        event = jsonsafe.loads(body)
    except jsonsafe.BadJSON as exc:
        return jsonify(error=f"the body is {exc}" if str(exc) == "not JSON"
                       else f"the body's JSON is {exc}"), 400
    if not isinstance(event, dict):
        return jsonify(error="the body is not a JSON object"), 400
    try:
        outcome = events.handle_event(hl, event, via)
    except RedisError as exc:
        # Nothing was kept; the phone keeps the event and retries it for about two days.
        log.error("android webhook: redis away (%s); the phone will retry", type(exc).__name__)
        return jsonify(error="store unavailable"), 503, {"Retry-After": RETRY_AFTER}
    if outcome == "early":
        return jsonify(outcome=outcome), 503, {"Retry-After": RETRY_AFTER}
    return jsonify(outcome=outcome), 200
