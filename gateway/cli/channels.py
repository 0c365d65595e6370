"""`hotline missed-call | android ... | gammu ...`: what the modem runs, and the SIM channels' chores."""

from __future__ import annotations

import sys
import time

import click

from gateway.cli.common import hotline, settings


@click.command("missed-call")
@click.argument("number")
def missed_call(number: str) -> None:
    """A ring gammu-smsd hung up on (RunOnIncomingCall): a callback ticket for NUMBER.

    Prints the ticket code; a caller who already has an open ticket gets no second one.
    """
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from gateway import redis_away, spool
    from gateway.channels.missed_call import RING, NotANumber
    from gateway.channels.missed_call import missed_call as ring

    hl = hotline()
    try:
        redis_away.replay(hl)
        ticket, new = ring(hl, number)
    except NotANumber:
        click.echo(f"hotline: {number[:40]!r} is not a phone number we can call back", err=True)
        sys.exit(2)
    except (RedisConnectionError, RedisTimeoutError):
        # gammu-smsd will not ring us again: write it down; the watcher handles it later.
        spool.append(hl.settings.data_dir, RING, {"From": number[:40]})
        click.echo("kept for later (redis is away)")
        return
    click.echo(ticket.code if new else f"{ticket.code} (already open)")


@click.group("android")
def android() -> None:
    """The Android phone running SMS Gateway for Android (Local Server mode)."""


@android.command("register-webhooks")
@click.option("--url", help="where the phone should post (default: HOTLINE_PUBLIC_URL/android/webhook)")
def register_webhooks(url: str | None) -> None:
    """Point the phone's sms:received/sent/delivered/failed events at the gateway."""
    from gateway.channels import TransportError
    from gateway.channels.android.transport import AndroidChannel

    s = settings()
    if not s.android_gateway_url:
        raise click.ClickException("set ANDROID_GATEWAY_URL to the phone's address first")
    target = url or f"{s.public_url.rstrip('/')}/android/webhook"
    try:
        ids = AndroidChannel(hotline()).register_webhooks(target)
    except TransportError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"registered {', '.join(ids)} -> {target}")
    if not s.android_gateway_signing_key:
        click.echo("warning: ANDROID_GATEWAY_SIGNING_KEY is not set; every webhook will be "
                   "refused until it is (copy it from the app: Settings > Webhooks)", err=True)


@android.command("poll")
def android_poll() -> None:
    """Read the phone's inbox once (for when its webhooks cannot reach the gateway)."""
    from gateway.channels import TransportError
    from gateway.channels.android.events import poll

    if not settings().android_gateway_url:
        raise click.ClickException("set ANDROID_GATEWAY_URL to the phone's address first")
    try:
        click.echo(f"{poll(hotline())} new text(s)")
    except TransportError as exc:
        raise click.ClickException(str(exc)) from None


@click.group("channels", invoke_without_command=True)
@click.pass_context
def channels(ctx: click.Context) -> None:
    """The pool's senders (HOTLINE_CHANNELS_FILE, else the one channel)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(channels_list)


@channels.command("list")
@click.option("--json", "as_json", is_flag=True, help="everything /healthz shows, as JSON")
def channels_list(as_json: bool) -> None:
    """Each sender: kind, whom it serves first, state, sent this hour and today against its
    caps, what waits on it (with --json also the phone's own health, the modem's outbox)."""
    import json

    from gateway.channels.health import report

    senders = report(hotline())
    if as_json:
        click.echo(json.dumps(senders, ensure_ascii=False, indent=2))
        return
    for name, s in senders.items():
        serves = ",".join(s["villages"] + s["towns"]) or ("standby" if s["role"] == "standby"
                                                          else "all")
        hour = f"{s['sent_this_hour']}/{s['per_hour'] or '-'}"
        day = f"{s['sent_today']}/{s['per_day'] or '-'}"
        line = (f"{name:<12} {s['kind']:<8} {serves:<16} {s['state']:<24} hour={hour:<9} "
                f"day={day:<9} queued={s['queued']} sending={s['sending']} held={s['held']}")
        if s["last_error"]:
            line += f" error={s['last_error'][:60]!r}"
        click.echo(line)


@click.group("gammu")
def gammu() -> None:
    """The GSM modem driven by gammu-smsd's files backend (GAMMU_SPOOL)."""


def _need_spool() -> None:
    if settings().gammu_spool is None:
        raise click.ClickException("set GAMMU_SPOOL to gammu-smsd's spool folder first")


@gammu.command("poll")
@click.argument("files", nargs=-1)
def gammu_poll(files: tuple[str, ...]) -> None:
    """Read inbox/ once and follow sent/ and error/ (FILES: what RunOnReceive passes, if any)."""
    from gateway.channels.watch import poll_gammu

    _need_spool()
    texts, statuses = poll_gammu(hotline(), files)
    click.echo(f"{texts} new text(s), {statuses} status change(s)")


@gammu.command("watch")
@click.option("--every", default=5.0, show_default=True, type=click.FloatRange(min=0.1),
              help="seconds between looks")
def gammu_watch(every: float) -> None:
    """Keep reading inbox/ and following sent/ and error/ until stopped (Ctrl-C)."""
    from gateway.channels.watch import Watcher

    _need_spool()
    watcher = Watcher(hotline(), every=every, channels={"gammu"})
    watcher.start()
    try:
        while watcher.is_alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        watcher.stop()


commands = [missed_call, android, gammu, channels]
