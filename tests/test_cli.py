"""The `hotline` command as an operator uses it: separate processes, a real Redis, real files."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from gateway.context import Hotline
from gateway.embedded import EmbeddedRedis
from gateway.settings import Settings
from tests.conftest import SAMPLE


def hotline_cmd(*args: str, env: dict[str, str], stdin: str | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], env=env, text=True,
                          capture_output=True, input=stdin, timeout=timeout)


@pytest.fixture
def env(hl: Hotline, data_dir: Path) -> dict[str, str]:
    return {**os.environ, "REDIS_URL": hl.url, "HOTLINE_DATA_DIR": str(data_dir)}


def test_registry_import_then_tickets_list_as_json(env: dict[str, str], hl: Hotline) -> None:
    done = hotline_cmd("registry", "import", str(SAMPLE), env=env)
    assert done.returncode == 0, done.stderr
    assert "16 added" in done.stdout
    from gateway import tickets

    tickets.open_ticket(hl, "+8613900000001", "medicine", "sms", text="降压药")
    listed = hotline_cmd("tickets", "list", "--json", "--village", "联合村", env=env)
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert [(t["category"], t["village"], t["grid"]) for t in data] == [
        ("medicine", "联合村", "第一网格")]
    assert hotline_cmd("tickets", "list", "--json", "--status", "done",
                       env=env).stdout.strip() == "[]"


def test_a_bad_registry_file_is_refused_whole_with_every_bad_row(
        env: dict[str, str], hl: Hotline, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("村(社区),网格,姓名,电话,身份,类别,地址,备注\n"
                   "联合村,第一网格,孙玉梅,13800000001,队长,,,\n"
                   "联合村,第一网格,王芳,123,队员,,,\n"
                   "联合村,第一网格,赵磊,13800000004,魔法师,,,\n", encoding="utf-8")
    done = hotline_cmd("registry", "import", str(bad), env=env)
    assert done.returncode == 1
    assert "row 3:" in done.stderr and "row 4:" in done.stderr and "nothing imported" in done.stderr
    assert hl.r.keys("hl:person:*") == []


def test_unknown_village_is_a_clear_error(env: dict[str, str]) -> None:
    done = hotline_cmd("tickets", "list", "--village", "无此村", env=env)
    assert done.returncode == 2 and "no village '无此村'" in done.stderr


def test_a_bad_setting_stops_with_one_line(env: dict[str, str]) -> None:
    done = hotline_cmd("tickets", "list", env={**env, "HOTLINE_LANGUAGE": "fr"})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "hotline: bad setting HOTLINE_LANGUAGE: 'fr' is not one of zh, en"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_hotline_run_serves_healthz_with_the_sample_loaded_and_stops_cleanly(
        tmp_path: Path) -> None:
    """The smoke test: `hotline run` on its own embedded Redis, as `make run` starts it."""
    port = free_port()
    data = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "HOTLINE_"))}
    env |= {"HOTLINE_DATA_DIR": str(data), "HOTLINE_ADMIN_PASSWORD": "correct horse"}
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "run", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        body = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and body is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    body = json.loads(r.read())
            except OSError:
                time.sleep(0.3)
        assert body is not None and body["redis"] == "ok"
        listed = hotline_cmd("tickets", "list", "--json", env=env)
        assert listed.returncode == 0 and json.loads(listed.stdout) == []
        server = EmbeddedRedis(data)
        assert server.running()
        import redis

        assert redis.Redis.from_url(server.url).scard("hl:people") == 16
        # Its links point where it listens (not at the default port 5000): a call's actions.
        from twilio.request_validator import RequestValidator

        answer_url = f"http://localhost:{port}/twilio/voice"
        form = {"CallSid": "CA" + "1" * 32, "From": "+8613900000001", "CallStatus": "ringing"}
        token = Settings.from_env(env).webhook_token()  # made once, shared through the data folder
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/twilio/voice", data=urllib.parse.urlencode(form).encode(),
            headers={"X-Twilio-Signature": RequestValidator(token).compute_signature(answer_url, form),
                     "Host": f"localhost:{port}"})
        with urllib.request.urlopen(request, timeout=10) as r:
            assert f"http://localhost:{port}/twilio/voice/menu?step=1" in r.read().decode()
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "loaded the sample registry: 16 people" in out
    assert f"http://localhost:{port}/" in out
    assert not EmbeddedRedis(data).running(), "the embedded Redis stops with hotline run"
    assert (data / "appendonly.aof").exists()
