"""`hotline messages list`: every SMS in and out, with its delivery status."""

from __future__ import annotations

import json
from collections import Counter

import click

from gateway import messages
from gateway.cli.common import hotline
from gateway.phones import mask, mask_text


@click.group("messages")
def messages_group() -> None:
    """SMS records."""


@messages_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="one JSON array")
@click.option("--status", type=click.Choice(messages.STATUSES))
@click.option("--limit", default=0, show_default=True, help="newest N only (0: every message)")
def list_command(as_json: bool, status: str | None, limit: int) -> None:
    """Messages, newest first: to, body, sender, attempts, provider id, status, error, and
    for one not yet out why it waits."""
    hl = hotline()
    found = messages.list_messages(hl, status=status, limit=limit if limit > 0 else -1)
    if as_json:
        click.echo(json.dumps([m.to_json(hl) for m in found], ensure_ascii=False, indent=1))
        return
    for m in found:
        who = mask(m.to if m.direction == "out" else m.sender)
        line = (f"{m.id:<7} {m.direction:<3} {m.status:<11} {m.kind:<10} {who:<17} "
                f"{m.channel or '-':<8} tries={m.attempts} sid={m.provider_id or '-'} "
                f"{mask_text(m.body[:30])!r}")
        if m.error:
            line += f" error={m.error[:60]!r}"
        if m.waiting and m.status in ("queued", "sending"):
            line += f" waiting={m.waiting[:80]!r}"  # which senders could not take it, and why
        click.echo(line)
    if not found:
        click.echo("no messages")
        return
    counts = Counter(m.status for m in found)
    click.echo(f"{len(found)} messages: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))


commands = [messages_group]
