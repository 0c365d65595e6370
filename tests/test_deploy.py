"""Runs what deploy/ gives an operator (nginx site, gunicorn settings, systemd units, redis.conf,
Sentinel, backup and restore) with the real programs, so the production guide is known to work.

Debian's nginx, systemd-analyze and Redis 7.0 (the server binary ships in redis-tools as
redis-check-rdb; Debian's redis-server package only adds a symlink to it) are the versions a
Debian 12 server gets. systemd itself does not run here: restore.sh meets a stand-in
`systemctl` that stops and starts the test's Redis and notes every call.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.test import EnvironBuilder

from gateway import tickets
from gateway.app import create_app
from gateway.cli import cli
from gateway.context import Hotline
from gateway.embedded import EmbeddedRedis
from gateway.registry_file import import_file
from gateway.settings import ROOT, Settings
from gateway.store import connect
from tests.conftest import (
    AUTH_TOKEN,
    PUBLIC_URL,
    RESIDENT,
    SAMPLE,
    make_settings,
    post_twilio,
    require_tool,
    twilio_signature,
)

DEPLOY = ROOT / "deploy"
PUBLIC_HOST = urllib.parse.urlsplit(PUBLIC_URL).hostname or ""
PLACEHOLDER_PASSWORD = "CHANGE-ME-long-random-password"
START_TIMEOUT = 30.0  # seconds; gunicorn importing the app is the slow one (about 2 s)


# --- small helpers ------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], what: str, process: subprocess.Popen[bytes] | None = None,
             log: Path | None = None, timeout: float = START_TIMEOUT) -> None:
    """Poll `check` until true; fail with the log's tail if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while not check():
        died = process is not None and process.poll() is not None
        if died or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            pytest.fail(f"{what} {'exited' if died else 'did not start'}: {tail}")
        time.sleep(0.05)


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def replace_once(text: str, old: str, new: str) -> str:
    """Replace a line the operator would edit; fail loudly if deploy/ no longer has it."""
    assert text.count(old) == 1, f"expected exactly one {old!r} in the deploy file"
    return text.replace(old, new)


# --- nginx --------------------------------------------------------------------------------------

def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for PUBLIC_HOST, as certbot would leave in /etc/letsencrypt/live/."""
    openssl = require_tool("openssl", "openssl")
    cert, key = tmp / "fullchain.pem", tmp / "privkey.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", f"/CN={PUBLIC_HOST}",
                    "-addext", f"subjectAltName=DNS:{PUBLIC_HOST}", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=30)
    return cert, key


class Nginx:
    """deploy/nginx's site in an nginx of its own: loopback ports, paths under a temp prefix."""

    def __init__(self, tmp: Path, upstream_port: int) -> None:
        self.binary = require_tool("nginx", "nginx")
        tmp.mkdir(parents=True, exist_ok=True)
        self.prefix = tmp
        self.http_port, self.https_port = free_port(), free_port()
        self.cert, key = self_signed(tmp)
        site = (DEPLOY / "nginx" / "hotline.conf").read_text()
        site = replace_once(site, "listen 80;", f"listen 127.0.0.1:{self.http_port};")
        site = replace_once(site, "listen 443 ssl", f"listen 127.0.0.1:{self.https_port} ssl")
        site = replace_once(site, f"/etc/letsencrypt/live/{PUBLIC_HOST}/fullchain.pem", str(self.cert))
        site = replace_once(site, f"/etc/letsencrypt/live/{PUBLIC_HOST}/privkey.pem", str(key))
        site = replace_once(site, "/var/log/nginx/hotline.access.log", str(tmp / "access.log"))
        site = replace_once(site, "http://127.0.0.1:8000", f"http://127.0.0.1:{upstream_port}")
        (tmp / "hotline.conf").write_text(site)
        shutil.copy(DEPLOY / "nginx" / "log-format.conf", tmp / "log-format.conf")
        # The main file stands in for Debian's /etc/nginx/nginx.conf, which includes conf.d/*.conf
        # (log-format.conf goes there) before sites-enabled/*. Run as root here, the workers stay
        # root so that they may enter pytest's private temp directory.
        user = "user root;" if os.geteuid() == 0 else ""
        temp = " ".join(f"{kind}_temp_path {tmp / kind};" for kind in
                        ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (tmp / "nginx.conf").write_text(f"""
{user}
worker_processes 1;
pid {tmp / 'nginx.pid'};
error_log {tmp / 'error.log'} info;
events {{ worker_connections 64; }}
http {{
    {temp}
    access_log off;
    include {tmp / 'log-format.conf'};
    include {tmp / 'hotline.conf'};
}}
""")
        self.process: subprocess.Popen[bytes] | None = None

    def command(self, *extra: str) -> list[str]:
        return [self.binary, "-e", str(self.prefix / "error.log"), "-p", str(self.prefix),
                "-c", str(self.prefix / "nginx.conf"), *extra]

    def test_config(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command("-t"), capture_output=True, text=True, timeout=30)

    def __enter__(self) -> Nginx:
        self.process = subprocess.Popen(self.command("-g", "daemon off;"),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: port_open(self.https_port), "nginx", self.process, self.prefix / "error.log")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            stop(self.process, signal.SIGQUIT)

    def https(self, method: str, path: str, body: str | None = None,
              headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        """A request as Twilio makes it: TLS to PUBLIC_HOST, the certificate checked."""
        context = ssl.create_default_context(cafile=str(self.cert))
        raw = socket.create_connection(("127.0.0.1", self.https_port), timeout=10)
        conn = http.client.HTTPSConnection(PUBLIC_HOST, self.https_port, context=context, timeout=10)
        conn.sock = context.wrap_socket(raw, server_hostname=PUBLIC_HOST)
        try:
            conn.request(method, path, body=body, headers={"Host": PUBLIC_HOST, **(headers or {})})
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode()
        finally:
            conn.close()

    def http(self, path: str) -> tuple[int, dict[str, str]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10)
        try:
            conn.request("GET", path, headers={"Host": PUBLIC_HOST})
            response = conn.getresponse()
            response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}
        finally:
            conn.close()


def signed_post(nginx: Nginx, path: str, params: dict[str, str], signed_url: str | None = None,
                token: str = AUTH_TOKEN) -> tuple[int, str]:
    """POST through nginx, signed as Twilio signs (for the public URL unless told otherwise)."""
    signature = twilio_signature(signed_url or PUBLIC_URL + path, params, token)
    status, _, body = nginx.https("POST", path, body=urllib.parse.urlencode(params), headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature})
    return status, body


@contextlib.contextmanager
def gunicorn(redis_url: str, data_dir: Path, log: Path) -> Iterator[int]:
    """The real app under deploy/gunicorn.conf.py, configured as /etc/hotline/hotline.env says."""
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HOTLINE_", "TWILIO_", "REDIS_", "ANDROID_"))}
    env.update({
        "REDIS_URL": redis_url, "HOTLINE_DATA_DIR": str(data_dir), "HOTLINE_PUBLIC_URL": PUBLIC_URL,
        "HOTLINE_TRUSTED_PROXIES": "1", "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "HOTLINE_SECRET_KEY": secrets.token_hex(32), "HOTLINE_SMS_CHANNEL": "outbox",
        # Settings read by deploy/gunicorn.conf.py itself: two sync processes are enough here.
        "HOTLINE_BIND": f"127.0.0.1:{port}", "HOTLINE_WEB_PROCESSES": "2",
    })
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(DEPLOY / "gunicorn.conf.py"), "gateway.wsgi:app"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: port_open(port), "gunicorn", process, log)
        yield port
    finally:
        stop(process)


def sms(sender: str, body: str) -> dict[str, str]:
    return {"MessageSid": f"SM{secrets.token_hex(16)}", "AccountSid": "AC" + "0" * 32,
            "From": sender, "To": "+8610000000000", "Body": body, "NumMedia": "0"}


def test_nginx_accepts_the_site_as_written_apart_from_ports_and_paths(tmp_path: Path) -> None:
    checked = Nginx(tmp_path, upstream_port=8000).test_config()
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr
    assert "warn" not in checked.stderr, checked.stderr


def test_twilio_webhooks_pass_nginx_over_tls_with_signatures_for_the_public_url(
        sample: Hotline, redis_server: EmbeddedRedis, data_dir: Path, tmp_path: Path) -> None:
    """Twilio -> nginx (TLS) -> gunicorn -> the app, signed for https://hotline.example.org/..."""
    gunicorn_log = tmp_path / "gunicorn.log"
    with gunicorn(redis_server.url, data_dir, gunicorn_log) as port, Nginx(tmp_path / "nginx", port) as nginx:
        status, headers, body = nginx.https("GET", "/healthz")
        assert status == 200 and json.loads(body)["redis"] == "ok"
        assert headers["strict-transport-security"] == "max-age=31536000"

        status, reply = signed_post(nginx, "/twilio/sms", sms(RESIDENT, "需要降压药"))
        assert status == 200, reply
        [ticket] = tickets.list_tickets(sample)
        message = ET.fromstring(reply).find("Message")
        assert message is not None and f"#{ticket.code}" in (message.text or "")

        # Signed without the auth token, or for the address nginx forwards to (what the app would
        # wrongly expect with HOTLINE_PUBLIC_URL unset): refused, and nothing is opened.
        forged = sms("+8613900000002", "需要降压药")
        for status, _ in (
                signed_post(nginx, "/twilio/sms", forged, token="not-the-auth-token"),
                signed_post(nginx, "/twilio/sms", forged, signed_url=f"http://127.0.0.1:{port}/twilio/sms")):
            assert status == 403
        assert len(tickets.list_tickets(sample)) == 1

        # The call flow's next steps are absolute public URLs with a query string, which nginx
        # must pass on unchanged for their signatures to hold.
        call = {"AccountSid": "AC" + "0" * 32, "CallSid": f"CA{secrets.token_hex(16)}",
                "CallStatus": "ringing", "Direction": "inbound", "From": RESIDENT,
                "To": "+8610000000000"}
        status, twiml = signed_post(nginx, "/twilio/voice", call)
        assert status == 200, twiml
        actions = re.findall(r'action="([^"]+)"', twiml)
        assert actions and all(a.startswith(f"{PUBLIC_URL}/twilio/voice/") and "?" in a for a in actions)
        next_step = urllib.parse.urlsplit(actions[0].replace("&amp;", "&"))
        status, twiml = signed_post(nginx, f"{next_step.path}?{next_step.query}",
                                    {**call, "CallStatus": "in-progress", "Digits": "9"},
                                    signed_url=actions[0].replace("&amp;", "&"))
        assert status == 200 and "<Response" in twiml

        status, headers = nginx.http("/twilio/sms?x=1")
        assert status == 301 and headers["location"] == f"https://{PUBLIC_HOST}/twilio/sms?x=1"

    # Logs keep paths only (no query strings) and no phone number in full.
    access = (tmp_path / "nginx" / "access.log").read_text()
    assert '"POST /twilio/sms" 200' in access and '"POST /twilio/sms" 403' in access
    assert f'"POST {next_step.path}" 200' in access and "?" not in access
    logged = gunicorn_log.read_text()
    assert '"POST /twilio/sms" 200' in logged and '"POST /twilio/sms" 403' in logged
    assert "step=" not in logged and RESIDENT[3:] not in logged
    assert "WARNING gunicorn" not in logged and "ERROR" not in logged, logged


class _Echo(BaseHTTPRequestHandler):
    """An upstream that records what nginx sends it."""

    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        _Echo.seen.append({k.lower(): v for k, v in self.headers.items()}
                          | {"peer": self.client_address[0]})
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_nginx_forwards_scheme_host_and_client_as_the_apps_proxyfix_reads_them(
        redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    _Echo.seen = []
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    try:
        with Nginx(tmp_path, upstream.server_address[1]) as nginx:
            # A client trying to pass itself off as another host, scheme, prefix and address.
            status, _, _ = nginx.https("GET", "/board", headers={
                "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http",
                "X-Forwarded-Prefix": "/evil", "X-Forwarded-For": "198.51.100.7"})
            assert status == 200
    finally:
        upstream.shutdown()
        upstream.server_close()
    [sent] = _Echo.seen
    assert (sent["host"], sent["x-forwarded-host"], sent["x-forwarded-proto"]) == (
        PUBLIC_HOST, PUBLIC_HOST, "https")
    assert "x-forwarded-prefix" not in sent
    assert sent["x-forwarded-for"] == "198.51.100.7, 127.0.0.1"

    # What the app makes of those headers with HOTLINE_TRUSTED_PROXIES=1, as deploy/README sets.
    app = create_app(make_settings(redis_server.url, tmp_path, trusted_proxies=1))
    fix = app.wsgi_app
    assert isinstance(fix, ProxyFix)
    seen: dict[str, Any] = {}

    def inner(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        seen.update(environ)
        start_response("200 OK", [])
        return []

    fix.app = inner
    headers = [(k, v) for k, v in sent.items() if k != "peer"]
    environ = EnvironBuilder(path="/board", headers=headers,
                             environ_base={"REMOTE_ADDR": sent["peer"]}).get_environ()
    fix(environ, lambda *a: lambda b: None)
    assert seen["wsgi.url_scheme"] == "https"
    assert seen["HTTP_HOST"] == PUBLIC_HOST
    assert seen["REMOTE_ADDR"] == "127.0.0.1"  # the address nginx saw, not the client's claim
    assert seen.get("SCRIPT_NAME", "") == ""


# --- systemd ------------------------------------------------------------------------------------

UNIT_DIR = DEPLOY / "systemd"


def unit(name: str) -> dict[str, dict[str, list[str]]]:
    """A unit file as sections of key -> values (a key may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in (UNIT_DIR / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        else:
            key, _, value = line.partition("=")
            current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture(scope="module")
def systemd_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file-system root as on the server after deploy/README step 4: systemd's own units,
    ours in /etc/systemd/system, and the programs our ExecStart lines name (as stubs: what
    they do is proven elsewhere; here only that they are there and executable)."""
    require_tool("systemd-analyze", "systemd")  # which brings systemd's own units below
    root = tmp_path_factory.mktemp("root")
    shutil.copytree(Path("/usr/lib/systemd/system"), root / "usr/lib/systemd/system", symlinks=True)
    ours = root / "etc/systemd/system"
    shutil.copytree(UNIT_DIR, ours)
    for name in os.listdir(UNIT_DIR):
        for command in unit(name).get("Service", {}).get("ExecStart", []):
            program = root / command.split()[0].lstrip("/")
            program.parent.mkdir(parents=True, exist_ok=True)
            program.write_text("#!/bin/sh\n")
            program.chmod(0o755)
        for env_file in unit(name).get("Service", {}).get("EnvironmentFile", []):
            target = root / env_file.lstrip("-/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
    return root


def verify(root: Path, name: str) -> subprocess.CompletedProcess[str]:
    analyze = require_tool("systemd-analyze", "systemd")
    return subprocess.run([analyze, "verify", f"--root={root}", "--man=no", name],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("name", ["hotline-web.service", "hotline-worker@1.service",
                                  "hotline-workers.target", "hotline-backup.service",
                                  "hotline-backup.timer"])
def test_systemd_analyze_verify_finds_nothing_to_say_about(systemd_root: Path, name: str) -> None:
    """Any complaint counts: systemd ignores a mistyped key or value with a warning only."""
    checked = verify(systemd_root, name)
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")


def test_systemd_analyze_verify_as_run_here_does_catch_mistakes(systemd_root: Path,
                                                                tmp_path: Path) -> None:
    """Without this, an empty verdict above could mean the check checks nothing."""
    root = tmp_path / "root"
    shutil.copytree(systemd_root, root, symlinks=True)
    web = root / "etc/systemd/system/hotline-web.service"
    web.write_text(web.read_text().replace("Restart=always", "Restart=alwayz"))
    assert "alwayz" in verify(root, "hotline-web.service").stderr
    (root / "opt/hotline/.venv/bin/hotline").unlink()
    missing = verify(root, "hotline-worker@2.service")
    assert missing.returncode != 0 and "/opt/hotline/.venv/bin/hotline" in missing.stderr


def test_the_units_run_the_web_app_any_number_of_workers_and_an_hourly_backup() -> None:
    web = unit("hotline-web.service")["Service"]
    assert web["ExecStart"] == [
        "/opt/hotline/.venv/bin/gunicorn -c /opt/hotline/deploy/gunicorn.conf.py gateway.wsgi:app"]
    assert (DEPLOY / "gunicorn.conf.py").is_file()
    assert "gunicorn" in (ROOT / "pyproject.toml").read_text().split("prod = [", 1)[1].split("]")[0]

    # A template: hotline-worker@1, @2, ... all part of (and wanted by) hotline-workers.target.
    worker = unit("hotline-worker@.service")
    assert worker["Service"]["ExecStart"] == ["/opt/hotline/.venv/bin/hotline worker"]
    assert "worker" in cli.commands
    assert worker["Unit"]["PartOf"] == ["hotline-workers.target"]
    assert worker["Install"]["WantedBy"] == ["hotline-workers.target"]
    assert unit("hotline-workers.target")["Install"]["WantedBy"] == ["multi-user.target"]
    for service in (web, worker["Service"]):
        assert service["User"] == ["hotline"] and service["WorkingDirectory"] == ["/opt/hotline"]
        assert service["EnvironmentFile"] == ["/etc/hotline/hotline.env"]
        assert service["ReadWritePaths"] == ["/var/lib/hotline"]  # HOTLINE_DATA_DIR in the README

    assert unit("hotline-backup.timer")["Timer"]["OnCalendar"] == ["hourly"]
    backup = unit("hotline-backup.service")["Service"]
    assert backup["ExecStart"] == ["/opt/hotline/deploy/backup.sh /var/backups/hotline"]
    assert os.access(DEPLOY / "backup.sh", os.X_OK) and os.access(DEPLOY / "restore.sh", os.X_OK)

    # The scheduling runs inside every worker: no unit for it, and the guide says so.
    assert not [n for n in os.listdir(UNIT_DIR) if "sched" in n]
    assert "There is no separate scheduler" in (DEPLOY / "README.md").read_text()


# --- Redis: redis.conf, Sentinel, backup and restore -------------------------------------------

@pytest.fixture
def redis_bin(tmp_path: Path) -> Path:
    """A bin directory whose redis-server is Debian's (7.0, from redis-tools), first on PATH."""
    server = Path(require_tool("redis-check-rdb", "redis-tools")).resolve()
    require_tool("redis-cli", "redis-tools")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # The binary acts on the name it is started by, as /usr/bin/redis-server -> redis-check-rdb does.
    (bin_dir / "redis-server").symlink_to(server)
    return bin_dir


def redis_conf(path: Path, data_dir: Path, port: int, password: str) -> Path:
    """deploy/redis/redis.conf with the operator's password, and a port and paths for a test."""
    text = (DEPLOY / "redis" / "redis.conf").read_text()
    text = replace_once(text, f"requirepass {PLACEHOLDER_PASSWORD}", f"requirepass {password}")
    text = replace_once(text, "\nport 6379\n", f"\nport {port}\n")
    text = replace_once(text, "dir /var/lib/redis", f"dir {data_dir}")
    text = replace_once(text, "pidfile /run/redis/redis-server.pid", f"pidfile {data_dir}.pid")
    text = replace_once(text, "logfile /var/log/redis/redis-server.log", f"logfile {data_dir}.log")
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@contextlib.contextmanager
def running_redis(bin_dir: Path, conf: Path, *extra: str) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([str(bin_dir / "redis-server"), str(conf), *extra],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield process
    finally:
        stop(process)


def once() -> Retry:
    """No retries: redis-py counts a refused password as a connection error and backs off."""
    return Retry(NoBackoff(), 0)


def answers(url: str) -> bool:
    """Whether Redis at `url` answers now (the caller polls)."""
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1, retry=once()).ping())
    except (redis.ConnectionError, redis.TimeoutError):
        return False


def test_redis_runs_durable_with_a_password_on_loopback_and_the_app_connects_by_redis_url(
        redis_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port, password = free_port(), secrets.token_hex(16)
    conf = redis_conf(tmp_path / "redis.conf", tmp_path / "redis", port, password)
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    with running_redis(redis_bin, conf) as server:
        wait_for(lambda: answers(url), "redis-server", server, tmp_path / "redis.log")
        r = redis.Redis.from_url(url, decode_responses=True)
        assert r.info("server")["redis_version"].startswith("7.")
        assert r.config_get("appendonly") == {"appendonly": "yes"}
        assert r.config_get("appendfsync") == {"appendfsync": "everysec"}
        assert r.config_get("requirepass") == {"requirepass": password}
        assert r.config_get("bind") == {"bind": "127.0.0.1 -::1"}
        assert r.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert (tmp_path / "redis" / "appendonlydir").is_dir()

        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port, retry=once()).ping()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis.from_url(f"redis://:wrong@127.0.0.1:{port}/0", retry=once()).ping()
        outside = _non_loopback_address()
        if outside:
            with socket.socket() as s:
                s.settimeout(2)
                assert s.connect_ex((outside, port)) != 0, f"redis answers on {outside}"

        # The app, configured as /etc/hotline/hotline.env says, both its clients.
        monkeypatch.setenv("REDIS_URL", url)
        monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path / "data"))
        hl = Hotline(Settings.from_env())
        assert hl.r.ping() and hl.rq.ping()
        assert hl.queue.count == 0


def _non_loopback_address() -> str | None:
    """This host's address on its outward interface, if it has one (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = str(s.getsockname()[0])
    return None if address.startswith("127.") else address


def test_the_app_finds_redis_through_sentinel_as_sentinel_conf_describes(
        redis_bin: Path, tmp_path: Path) -> None:
    port, sentinel_port, password = free_port(), free_port(), secrets.token_hex(16)
    conf = redis_conf(tmp_path / "redis.conf", tmp_path / "redis", port, password)
    text = (DEPLOY / "redis" / "sentinel.conf").read_text()
    text = replace_once(text, "port 26379", f"port {sentinel_port}")
    text = replace_once(text, "sentinel monitor hotline 10.0.0.1 6379 2",
                        f"sentinel monitor hotline 127.0.0.1 {port} 2")
    text = text.replace(PLACEHOLDER_PASSWORD, password)
    (tmp_path / "sentinel.conf").write_text(text)  # Sentinel rewrites its file: a copy, writable
    with running_redis(redis_bin, conf) as server, \
            running_redis(redis_bin, tmp_path / "sentinel.conf", "--sentinel",
                          "--logfile", str(tmp_path / "sentinel.log")) as sentinel:
        wait_for(lambda: answers(f"redis://:{password}@127.0.0.1:{port}/0"), "redis-server", server)
        wait_for(lambda: answers(f"redis://:{password}@127.0.0.1:{sentinel_port}"), "sentinel",
                 sentinel, tmp_path / "sentinel.log")
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=sentinel_port, retry=once()).ping()
        # The URL form deploy/redis/sentinel.conf gives for /etc/hotline/hotline.env.
        r = connect(f"redis+sentinel://:{password}@127.0.0.1:{sentinel_port}/hotline/0")
        r.set("deploy-test", "through sentinel")
        assert redis.Redis(port=port, password=password).get("deploy-test") == b"through sentinel"


SYSTEMCTL = """#!/usr/bin/env bash
# Stands in for systemd's systemctl, which does not run in tests: notes each call and stops or
# starts the test's Redis for the unit redis-server.
set -eu
echo "$*" >> "$SHIM_LOG"
action=$1; shift
export REDISCLI_AUTH=$SHIM_REDIS_PASSWORD
for unit in "$@"; do
  [ "$unit" = redis-server ] || continue
  if [ "$action" = stop ]; then
    redis-cli -p "$SHIM_REDIS_PORT" SHUTDOWN >/dev/null 2>&1 || true
    for _ in $(seq 200); do redis-cli -p "$SHIM_REDIS_PORT" PING >/dev/null 2>&1 || exit 0; sleep 0.05; done
    exit 1
  else
    redis-server "$REDIS_CONF" --daemonize yes
    for _ in $(seq 200); do
      [ "$(redis-cli -p "$SHIM_REDIS_PORT" PING 2>/dev/null)" = PONG ] && exit 0
      sleep 0.05
    done
    exit 1
  fi
done
"""


def script_env(redis_bin: Path, tmp_path: Path, **extra: str) -> dict[str, str]:
    shim = redis_bin / "systemctl"
    shim.write_text(SYSTEMCTL)
    shim.chmod(0o755)
    return {**os.environ, "PATH": f"{redis_bin}:{os.environ['PATH']}",
            "SHIM_LOG": str(tmp_path / "systemctl.log"), **extra}


def run_script(name: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(DEPLOY / name), *args], env=env, capture_output=True, text=True,
                          timeout=60)


def test_a_ticket_backed_up_comes_back_after_restore_into_a_fresh_redis(
        redis_bin: Path, tmp_path: Path) -> None:
    port, password = free_port(), secrets.token_hex(16)
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    old = redis_conf(tmp_path / "old.conf", tmp_path / "old", port, password)
    backups = tmp_path / "backups"
    with running_redis(redis_bin, old) as server:
        wait_for(lambda: answers(url), "redis-server", server)
        settings = make_settings(url, tmp_path / "data")
        hl = Hotline(settings)
        assert import_file(hl.r, SAMPLE, "CN").ok
        client = create_app(settings).test_client()
        assert post_twilio(client, "/twilio/sms", sms(RESIDENT, "需要降压药")).status_code == 200
        [ticket] = tickets.list_tickets(hl)

        # Redis waits 5 s for more replicas to share a snapshot sent over the network; the
        # hourly backup can afford that, a test need not.
        hl.r.config_set("repl-diskless-sync-delay", 0)
        # A village's recorded greeting, kept with the data: it goes with the backup.
        voice = settings.data_dir / "prompts" / "villages" / "团结村" / "mn" / "greeting.wav"
        voice.parent.mkdir(parents=True)
        voice.write_bytes(b"RIFF-a-village-voice")
        env = script_env(redis_bin, tmp_path, REDIS_URL=url, HOTLINE_DATA_DIR=str(settings.data_dir))
        done = run_script("backup.sh", str(backups), env=env)
        assert done.returncode == 0, done.stderr
        [backup] = list(backups.iterdir())
        assert re.fullmatch(r"\d{8}T\d{6}Z", backup.name) and (backup / "dump.rdb").is_file()
        assert password not in done.stdout + done.stderr

        # Restore onto a new machine's Redis: same settings, an empty data directory.
        fresh = redis_conf(tmp_path / "fresh.conf", tmp_path / "fresh", port, password)
        env.update(REDIS_CONF=str(fresh), REDIS_USER=pwd.getpwuid(os.getuid()).pw_name,
                   SHIM_REDIS_PORT=str(port), SHIM_REDIS_PASSWORD=password,
                   HOTLINE_DATA_DIR=str(tmp_path / "new-data"))
        done = run_script("restore.sh", str(backup), env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        back = tmp_path / "new-data" / "prompts" / "villages" / "团结村" / "mn" / "greeting.wav"
        assert back.read_bytes() == b"RIFF-a-village-voice" and "recorded prompts" in done.stdout
        server.wait(timeout=10)  # the stand-in systemctl stopped the old one
    try:
        assert (tmp_path / "systemctl.log").read_text().splitlines() == [
            "stop hotline-web hotline-workers.target", "stop redis-server",
            "start redis-server", "start hotline-web hotline-workers.target"]
        restored = Hotline(settings)
        assert [t.code for t in tickets.list_tickets(restored)] == [ticket.code]
        assert restored.r.config_get("appendonly") == {"appendonly": "yes"}
        assert list((tmp_path / "fresh" / "appendonlydir").glob("*.manifest"))
        # Durable from here on: with appendonly on, a restart reads the new append-only file.
        subprocess.run(["systemctl", "stop", "redis-server"], env=env, check=True, timeout=30)
        subprocess.run(["systemctl", "start", "redis-server"], env=env, check=True, timeout=30)
        assert [t.code for t in tickets.list_tickets(Hotline(settings))] == [ticket.code]
    finally:
        subprocess.run(["systemctl", "stop", "redis-server"], env=env, timeout=30)


def test_restore_refuses_a_damaged_backup_before_stopping_anything(redis_bin: Path,
                                                                   tmp_path: Path) -> None:
    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "dump.rdb").write_bytes(b"REDIS0010 not really a snapshot")
    conf = redis_conf(tmp_path / "redis.conf", tmp_path / "redis", free_port(), "x" * 32)
    env = script_env(redis_bin, tmp_path, REDIS_CONF=str(conf))
    done = run_script("restore.sh", str(backup), env=env)
    assert done.returncode != 0 and "damaged" in done.stderr
    assert not (tmp_path / "systemctl.log").exists()


def test_backup_says_which_urls_it_cannot_use(redis_bin: Path, tmp_path: Path) -> None:
    env = script_env(redis_bin, tmp_path, REDIS_URL="redis+sentinel://:pw@10.0.0.1:26379/hotline/0")
    done = run_script("backup.sh", str(tmp_path / "backups"), env=env)
    assert done.returncode == 2 and "REDIS_BACKUP_URL" in done.stderr
    assert not (tmp_path / "backups").exists()


def test_the_shell_scripts_pass_shellcheck() -> None:
    shellcheck = require_tool("shellcheck", "shellcheck")
    checked = subprocess.run([shellcheck, str(DEPLOY / "backup.sh"), str(DEPLOY / "restore.sh")],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout
