"""Shared fixtures: a real redis-server for the session, flushed around every test, and the app over it."""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from rq import SimpleWorker
from twilio.request_validator import RequestValidator

from gateway import accounts
from gateway.app import create_app
from gateway.context import QUEUE, Hotline
from gateway.embedded import EmbeddedRedis
from gateway.jobs import hand_over_new_tickets
from gateway.registry_file import import_file
from gateway.settings import ROOT, Settings
from tests.fake_twilio import (
    ACCOUNT_SID,
    FROM_NUMBER,
    FakeTwilio,
    need_spec,
    start_worker,
    stop_workers,
    twilio_env,
)
from workers import runtime

PUBLIC_URL = "https://hotline.example.org"
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
SAMPLE = ROOT / "gateway" / "sample_registry.csv"

# The sample ledger's cast (see gateway/sample_registry.csv).
LEADER = "+8613800000001"      # 孙玉梅, leader, 联合村 第一网格
GRID_WORKER = "+8613800000002"  # 李建国
VOLUNTEER = "+8613800000003"   # 王芳
VOLUNTEER2 = "+8613800000004"  # 赵磊
OTHER_GRID_LEADER = "+8613800000011"  # 刘洋, 第二网格
HEAD = "+8613800000021"        # 张志强, head of 联合村
DUTY = "+8613800000051"        # 周海涛, town duty
RESIDENT = "+8613900000001"    # 王秀英, 联合村 第一网格, lives alone
LANDLINE_RESIDENT = "+864828261234"  # 李德福, contact 李红 +8613900000102
STRANGER = "+8613700009999"    # not in the ledger


def require_tool(name: str, package: str) -> str:
    """The path of system tool `name`; skip without it, or fail under HOTLINE_REQUIRE_ALL=1."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} not installed (apt-get install {package})"
    if os.environ.get("HOTLINE_REQUIRE_ALL") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    # Durability is not what the session's Redis is for (tests/test_faults.py has its own):
    # without fsync a busy disk cannot stall it into looking away mid-test.
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), fsync="no")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


def make_settings(redis_url: str, data_dir: Path, **overrides: Any) -> Settings:
    base = Settings(
        redis_url=redis_url, data_dir=data_dir, public_url=PUBLIC_URL,
        twilio_auth_token=AUTH_TOKEN, sms_channel="outbox", sms_rate=0,
        retry_first=1, retry_max=2, retry_for=4,
        ledger_refresh=0,  # tests change the ledger and look at once; tests/test_ledger.py covers the copy
    )
    return base.with_overrides(**overrides)


@pytest.fixture
def settings(redis_server: EmbeddedRedis, data_dir: Path) -> Settings:
    return make_settings(redis_server.url, data_dir)


@pytest.fixture
def hl(settings: Settings) -> Iterator[Hotline]:
    """The hotline over a flushed real Redis; in-process jobs use it too."""
    hotline = Hotline(settings)
    hotline.r.flushall()
    runtime.use(hotline)
    yield hotline
    runtime.use(None)
    hotline.r.flushall()


@pytest.fixture
def sample(hl: Hotline) -> Hotline:
    """The hotline with the sample ledger loaded."""
    report = import_file(hl.r, SAMPLE, "CN")
    assert report.ok, report.errors
    return hl


PASSWORD = "a-long-password"  # every dashboard account the tests make


@pytest.fixture
def people(sample: Hotline) -> Hotline:
    """The sample ledger plus an admin and the heads of 联合村 and 团结村."""
    accounts.create(sample, "admin", "admin", PASSWORD)
    accounts.create(sample, "zhang", "head", PASSWORD, "联合村")
    accounts.create(sample, "bai", "head", PASSWORD, "团结村")
    return sample


@pytest.fixture
def app(hl: Hotline) -> Flask:
    application = create_app(hl.settings, url=hl.url)
    application.config["TESTING"] = True
    return application


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def app_with(hl: Hotline) -> Callable[..., FlaskClient]:
    """A client of an app built with some settings changed (same Redis, sample ledger)."""
    report = import_file(hl.r, SAMPLE, "CN")
    assert report.ok

    def build(**overrides: Any) -> FlaskClient:
        settings = make_settings(hl.url, hl.settings.data_dir, **overrides)
        app = create_app(settings, url=hl.url)
        app.config["TESTING"] = True
        return app.test_client()

    return build


def drain(hl: Hotline) -> None:
    """Run every queued job in this process (new tickets' offers first), as `hotline worker
    --burst` would."""
    for _ in range(20):  # a job may open a ticket (a missed call, a replayed spool): rounds
        handed = hand_over_new_tickets(hl)
        worked = SimpleWorker([QUEUE], connection=hl.rq).work(burst=True, logging_level="WARNING")
        if not handed and not worked:
            break


def twilio_signature(url: str, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, params))


def post_twilio(client: FlaskClient, path: str, params: dict[str, str], *,
                token: str = AUTH_TOKEN, signature: str | None = None) -> Any:
    """POST as Twilio does: form-encoded, signed over PUBLIC_URL + path + query."""
    url = PUBLIC_URL + path
    headers = {"X-Twilio-Signature": signature if signature is not None
               else twilio_signature(url, params, token)}
    body = urllib.parse.urlencode(params)
    return client.post(path, data=body, headers=headers,
                       content_type="application/x-www-form-urlencoded")


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    """A fake Twilio on 127.0.0.1 that checks every request against Twilio's description."""
    need_spec()
    with FakeTwilio() as twilio:
        yield twilio
    assert twilio.problems() == []


def twilio_settings(redis_url: str, data_dir: Path, fake: FakeTwilio, **overrides: Any) -> Settings:
    """Settings that send through `fake` as the Twilio channel."""
    return make_settings(redis_url, data_dir, sms_channel="twilio", twilio_account_sid=ACCOUNT_SID,
                         twilio_from_number=FROM_NUMBER, twilio_api_base=fake.url, **overrides)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis of this test's own, which the test may stop and start again."""
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


Spawn = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def spawn(hl: Hotline, fake: FakeTwilio, tmp_path: Path) -> Iterator[Spawn]:
    """Start `hotline worker` processes on the test's Redis, sending through `fake`; all are
    stopped afterwards."""
    started: list[subprocess.Popen[bytes]] = []

    def start(**extra: str) -> subprocess.Popen[bytes]:
        process = start_worker(twilio_env(fake, hl.url, hl.settings.data_dir, **extra), tmp_path)
        started.append(process)
        return process

    yield start
    stop_workers(started)
