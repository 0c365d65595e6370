"""`hotline missed-call | android ... | gammu ...`: what the modem runs, and the SIM channels' chores."""

from __future__ import annotations

import sys
import time

import click

from gateway.cli.common import hotline, settings
from gateway.context import Hotline


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


def _phones() -> list[tuple[str, Hotline]]:
    """Every Android sender of the pool (name, the hotline as its phone sees it)."""
    from gateway.channels import senders_of

    phones = [(sender.name, own) for sender, own in senders_of(hotline(), "android")]
    if not phones:
        raise click.ClickException("no Android phone: set ANDROID_GATEWAY_URL to the phone's "
                                   "address, or add an android sender to HOTLINE_CHANNELS_FILE")
    return phones


@android.command("register-webhooks")
@click.option("--url", help="where the phones should post (default: HOTLINE_PUBLIC_URL/android/webhook)")
def register_webhooks(url: str | None) -> None:
    """Point every phone's sms:received/sent/delivered/failed events at the gateway."""
    from gateway.channels import TransportError
    from gateway.channels.android.transport import AndroidChannel

    target = url or f"{settings().public_url.rstrip('/')}/android/webhook"
    failed = False
    for name, own in _phones():
        try:
            ids = AndroidChannel(own).register_webhooks(target)
        except TransportError as exc:
            click.echo(f"{name}: {exc}", err=True)
            failed = True
            continue
        click.echo(f"{name}: registered {', '.join(ids)} -> {target}")
        if not own.settings.android_gateway_signing_key:
            click.echo(f"warning: {name} has no signing key (ANDROID_GATEWAY_SIGNING_KEY or "
                       "signing_key_file); its webhooks are refused until it has (copy it from "
                       "the app: Settings > Webhooks)", err=True)
    if failed:
        raise click.ClickException("some phones could not be reached; run it again for them")


@android.command("poll")
def android_poll() -> None:
    """Read every phone's inbox once (for when their webhooks cannot reach the gateway)."""
    from gateway.channels import TransportError
    from gateway.channels.watch import poll_android

    failed = False
    for name, _ in _phones():
        try:
            click.echo(f"{name}: {poll_android(hotline(), name)} new text(s)")
        except TransportError as exc:
            click.echo(f"{name}: {exc}", err=True)
            failed = True
    if failed:
        raise click.ClickException("some phones could not be read")


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
    if not any(s.kind == "gammu" for s in hotline().pool):
        raise click.ClickException("set GAMMU_SPOOL to gammu-smsd's spool folder first (or add "
                                   "a gammu sender to HOTLINE_CHANNELS_FILE)")


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
