"""`hotline messages list`: every SMS in and out, with its delivery status."""

from __future__ import annotations

import json

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
@click.option("--limit", default=200, show_default=True)
def list_command(as_json: bool, status: str | None, limit: int) -> None:
    """Messages, newest first."""
    hl = hotline()
    found = messages.list_messages(hl, status=status, limit=limit)
    if as_json:
        click.echo(json.dumps([m.to_json(hl) for m in found], ensure_ascii=False, indent=1))
        return
    for m in found:
        who = mask(m.to if m.direction == "out" else m.sender)
        click.echo(f"{m.id:<7} {m.direction:<3} {m.status:<11} {m.kind:<10} {who:<17} "
                   f"tries={m.attempts} {mask_text(m.body[:30])!r}")
    if not found:
        click.echo("no messages")


commands = [messages_group]
