"""The app as gunicorn serves it for benchmarks, plus a bare baseline: signature check and fixed TwiML."""

from __future__ import annotations

from flask import Flask, Response

from gateway import logs
from gateway.app import create_app
from gateway.channels.twilio.signature import require_signature

BASELINE = "/twilio/bench-baseline"
FIXED = '<?xml version="1.0" encoding="UTF-8"?><Response><Say language="zh-CN">好</Say></Response>'


def create() -> Flask:
    logs.setup()  # as gateway.wsgi does: HOTLINE_LOG_LEVEL, numbers masked
    app = create_app()

    # Under /twilio/ like the webhooks, so it passes the same hooks (the login wall lets it by).
    @app.post(BASELINE)
    @require_signature
    def baseline() -> Response:
        return Response(FIXED, mimetype="text/xml")

    return app
