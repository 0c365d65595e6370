"""`hotline run | serve | worker | sip`: web app, workers, SIP agent, or all on the embedded Redis."""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import click

from gateway.cli.common import hotline, settings
from gateway.embedded import EmbeddedRedis, EmbeddedRedisError
from gateway.private import UMASK

log = logging.getLogger(__name__)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """The web app alone (for production use gunicorn gateway.wsgi:app)."""
    from werkzeug.serving import run_simple

    from gateway.app import create_app

    hl = hotline()
    app = create_app(hl.settings, url=hl.url, background=True)
    run_simple(host, port, app, threaded=True, use_reloader=False)


@click.command("worker")
@click.option("--burst", is_flag=True, help="drain the jobs that are due, then exit")
def worker(burst: bool) -> None:
    """An RQ worker with the scheduler (retries, escalations, reminders)."""
    from workers.service import run_worker

    hl = hotline()
    os.environ.setdefault("REDIS_URL", hl.url)  # jobs build their own connection from this
    sys.exit(0 if run_worker(hl, burst=burst) else 1)


@click.command("sip")
@click.option("--web", default="", metavar="URL",
              help="reach the web here instead of at HOTLINE_PUBLIC_URL (the same box)")
@click.option("--address", "only", default=-1, type=int, hidden=True,
              help="answer only the Nth address of HOTLINE_SIP_LISTEN (one engine process each)")
def sip(web: str, only: int) -> None:
    """The SIP agent alone: answers the gateway's calls and runs the menu through the web's
    voice webhooks at HOTLINE_PUBLIC_URL (on this box or at the county)."""
    from gateway.settings import ConfigError
    from gateway.sip.config import from_env

    try:
        addresses = from_env(os.environ)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if not addresses:
        raise click.ClickException("HOTLINE_SIP_LISTEN is not set (e.g. 0.0.0.0:5060)")
    try:
        import pjsua2  # noqa: F401
    except ImportError:
        raise click.ClickException(
            "the SIP stack is not installed: pip install 'hotline[sip]' (PJSIP's pjsua2)") from None
    if len(addresses) > 1 and only < 0:
        # pjsua is one per process: an engine process per address, supervised here.
        # An engine that dies is started again alone: the other addresses' calls go on.
        extra = ["--web", web] if web else []

        def engine(i: int) -> subprocess.Popen[bytes]:
            return subprocess.Popen([sys.executable, "-m", "gateway.cli", "sip", *extra,
                                     "--address", str(i)], start_new_session=True)

        _supervise([engine(i) for i in range(len(addresses))], restart=engine)
        return
    if not -1 <= only < len(addresses):
        raise click.ClickException(f"--address {only}: HOTLINE_SIP_LISTEN has {len(addresses)}")
    sip_settings = addresses[max(only, 0)]
    from gateway.logs import setup
    from gateway.sip.agent import Agent

    setup(default="INFO")
    # A crash inside the SIP stack (native code) leaves no Python traceback: say where it was.
    faulthandler.enable()
    agent = Agent(settings(), sip_settings, web_url=web or None)

    def stop(signum: int, frame: object) -> None:
        agent.stop_soon()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    click.echo(f"hotline sip: answering {sip_settings.host}:{sip_settings.port}; "
               f"web {agent.web}", err=True)
    agent.run()


def load_sample_registry_if_empty() -> str | None:
    """Load the bundled sample ledger into an empty store; say what was loaded."""
    from gateway import registry
    from gateway.registry_file import import_file

    hl = hotline()
    if not registry.is_empty(hl.r):
        return None
    with resources.as_file(resources.files("gateway") / "sample_registry.csv") as path:
        report = import_file(hl.r, Path(path), hl.settings.default_region)
    if not report.ok:
        raise click.ClickException(f"the sample registry is broken: {report.errors[:3]}")
    return f"loaded the sample registry: {report.added} people"


@click.command("run")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def run(host: str, port: int) -> None:
    """Web app, worker and scheduler together, on the embedded Redis unless REDIS_URL is set."""
    os.umask(UMASK)  # what it and its children write (var/: Redis's files, the spool) is private
    s = settings()
    server: EmbeddedRedis | None = None
    env = dict(os.environ)
    env.setdefault("HOTLINE_SIMULATOR", "on")
    shown_host = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
    # What it writes into links (recordings to <Play>, actions, webhooks) points where it
    # listens: with --port 5066 and no HOTLINE_PUBLIC_URL, not at the default port 5000.
    env.setdefault("HOTLINE_PUBLIC_URL", f"http://{shown_host}:{port}")
    if not s.redis_url:
        server = EmbeddedRedis(s.data_dir)
        try:
            started = server.start()
        except EmbeddedRedisError as exc:
            raise click.ClickException(str(exc)) from None
        if not started:
            server = None  # someone else's server: leave it running when we stop
        env["REDIS_URL"] = EmbeddedRedis(s.data_dir).url
        os.environ["REDIS_URL"] = env["REDIS_URL"]
        settings.cache_clear()
        hotline.cache_clear()
    loaded = load_sample_registry_if_empty()
    login = _first_admin()
    # Children in sessions of their own: a Ctrl-C reaches only this supervisor, which then
    # stops web and workers in order, and Redis last.
    children = [
        subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--host", host,
                          "--port", str(port)], env=env, start_new_session=True),
    ]
    for _ in range(settings().workers):
        children.append(subprocess.Popen([sys.executable, "-m", "gateway.cli", "worker"],
                                         env=env, start_new_session=True))
    if env.get("HOTLINE_SIP_LISTEN", "").strip():
        local = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
        children.append(subprocess.Popen([sys.executable, "-m", "gateway.cli", "sip", "--web", local],
                                         env=env, start_new_session=True))
    click.echo("")
    click.echo("hotline is running")
    if loaded:
        click.echo(f"  {loaded}")
    click.echo(f"  dashboard:       http://{shown_host}:{port}/")
    if env.get("HOTLINE_SIMULATOR", "on").lower() in ("on", "1", "true", "yes"):
        click.echo(f"  phone simulator: http://{shown_host}:{port}/simulator")
    click.echo(f"  health:          http://{shown_host}:{port}/healthz")
    if login:
        click.echo(f"  {login}")
    pool = hotline().pool
    click.echo("  SMS senders:     " + ", ".join(
        f"{p.name} ({', '.join([p.kind, *p.villages, *p.towns] + (['standby'] if p.standby else []))})"
        for p in pool))
    if env.get("HOTLINE_SIP_LISTEN", "").strip():
        click.echo(f"  SIP calls:       udp {env['HOTLINE_SIP_LISTEN'].strip()}")
    click.echo("  stop with Ctrl-C")
    _supervise(children)
    if server:
        server.stop()


def _first_admin() -> str | None:
    """Create the first admin account if there is none, and say how to log in."""
    from gateway import accounts

    return accounts.ensure_first_admin(hotline())


def _supervise(children: list[subprocess.Popen[bytes]],
               restart: Callable[[int], subprocess.Popen[bytes]] | None = None) -> None:
    """Wait until a signal or a child's death, then stop every child; with `restart`, a child
    that dies is started again in its place (restart(its index)) and the others go on."""
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping:
        dead = [(i, c) for i, c in enumerate(children) if c.poll() is not None]
        for i, child in dead:
            code = child.returncode
            how = f"signal {-code}" if code < 0 else f"exit code {code}"
            if restart is None:
                click.echo(f"hotline: a process stopped ({how}); stopping the others", err=True)
                break
            click.echo(f"hotline: process {i + 1} stopped ({how}); starting it again", err=True)
            time.sleep(1)  # a process that dies at once does not spin
            children[i] = restart(i)
        if dead and restart is None:
            break
        time.sleep(0.2)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


commands = [run, serve, worker, sip]
