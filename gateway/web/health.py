"""GET /healthz: whether Redis answers, which channel sends, and how far behind the workers are."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue
from redis.exceptions import RedisError

from gateway import clock
from gateway.context import Hotline

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    hl: Hotline = current_app.extensions["hotline"]
    body: dict[str, object] = {"channel": hl.settings.sms_channel}
    try:
        hl.r.ping()
        queue = hl.queue
        body["redis"] = "ok"
        body["queue_backlog"] = queue.count
        oldest = queue.get_job_ids(0, 1)
        age = None
        if oldest:
            job = queue.fetch_job(oldest[0])
            if job is not None and job.enqueued_at is not None:
                age = max(0.0, clock.timestamp() - job.enqueued_at.timestamp())
        body["oldest_job_age"] = age
        from gateway.channels.health import report

        body["channels"] = report(hl)  # each channel's state and backlog (phone, modem ...)
    except (RedisError, OSError) as exc:
        body["redis"] = f"down: {type(exc).__name__}"
        return jsonify(body), 503
    return jsonify(body), 200
