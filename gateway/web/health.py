"""GET /healthz: whether Redis answers, which channel sends, and how far behind the workers are."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue
from redis.exceptions import RedisError

from gateway import clock
from gateway.context import Hotline
from gateway.store import KEYS

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    hl: Hotline = current_app.extensions["hotline"]
    body: dict[str, object] = {"channel": hl.settings.sms_channel}
    try:
        hl.r.ping()
        queue = hl.queue
        body["redis"] = "ok"
        # New tickets wait on the intake list until a worker's ticker makes their offer jobs:
        # they are backlog too (with no worker running, nothing else would show it).
        waiting = int(hl.r.llen(KEYS.intake))
        body["queue_backlog"] = queue.count + waiting
        body["tickets_waiting"] = waiting
        since: list[float] = []
        oldest = queue.get_job_ids(0, 1)
        if oldest:
            job = queue.fetch_job(oldest[0])
            if job is not None and job.enqueued_at is not None:
                since.append(job.enqueued_at.timestamp())
        if waiting and (first := hl.r.lindex(KEYS.intake, -1)):
            opened = hl.r.hget(KEYS.ticket(first), "created_at")
            if opened:
                since.append(float(opened))
        body["oldest_job_age"] = max(0.0, clock.timestamp() - min(since)) if since else None
        from gateway.channels.health import report

        body["channels"] = report(hl)  # each channel's state and backlog (phone, modem ...)
    except (RedisError, OSError) as exc:
        body["redis"] = f"down: {type(exc).__name__}"
        return jsonify(body), 503
    return jsonify(body), 200
