"""GET /healthz answers 200 with figures while Redis answers, 503 when it does not."""

from __future__ import annotations

from pathlib import Path

from flask.testing import FlaskClient

from gateway import tickets
from gateway.app import create_app
from gateway.context import Hotline
from tests.conftest import STRANGER, drain, make_settings


def test_healthz_reports_redis_channel_and_backlog(client: FlaskClient, hl: Hotline) -> None:
    hl.enqueue("workers.messages.send_message", "m1")
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["redis"] == "ok" and body["channel"] == "outbox"
    assert body["queue_backlog"] == 1
    assert body["oldest_job_age"] is not None and body["oldest_job_age"] >= 0


def test_healthz_counts_new_tickets_no_worker_has_taken_up_yet(client: FlaskClient,
                                                               hl: Hotline) -> None:
    tickets.open_ticket(hl, STRANGER, "food", "sms")
    body = client.get("/healthz").get_json()
    assert (body["queue_backlog"], body["tickets_waiting"]) == (1, 1)
    assert body["oldest_job_age"] is not None and body["oldest_job_age"] >= 0
    drain(hl)
    body = client.get("/healthz").get_json()
    assert (body["queue_backlog"], body["tickets_waiting"], body["oldest_job_age"]) == (0, 0, None)


def test_healthz_is_503_when_redis_is_away(tmp_path: Path) -> None:
    settings = make_settings(f"unix://{tmp_path}/nothing.sock", tmp_path)
    app = create_app(settings)
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["redis"].startswith("down")
