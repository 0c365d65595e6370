"""The senders page (admin only): each phone, modem or account of the pool, as `hotline channels list`."""

from __future__ import annotations

from flask import abort, render_template
from flask.typing import ResponseReturnValue

from gateway.channels.health import report
from gateway.web.auth import user
from gateway.web.site import bp, hotline


@bp.get("/senders")
def senders() -> ResponseReturnValue:
    if not user().is_admin:
        abort(404)
    # The hotline's own records only: a page must not wait on an unreachable phone's /health.
    return render_template("senders.html", senders=report(hotline(), devices=False))
