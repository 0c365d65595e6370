"""`hotline tickets list`: tickets newest first, as a table or as JSON."""

from __future__ import annotations

import json

import click

from gateway import tickets
from gateway.cli.common import hotline, village_id
from gateway.phones import mask


@click.group("tickets")
def tickets_group() -> None:
    """Help tickets."""


@tickets_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="one JSON array")
@click.option("--status", type=click.Choice(tickets.STATUSES))
@click.option("--village", help="a village's name as in the registry, or its id")
@click.option("--limit", default=200, show_default=True)
def list_command(as_json: bool, status: str | None, village: str | None, limit: int) -> None:
    """Tickets, newest first."""
    hl = hotline()
    found = tickets.list_tickets(hl, status=status, village_id=village_id(hl, village),
                                 limit=limit)
    if as_json:
        click.echo(json.dumps([t.to_json(hl) for t in found], ensure_ascii=False, indent=1))
        return
    for t in found:
        data = t.to_json(hl)
        where = f"{data['village']}/{data['grid']}" if data["village"] else "triage"
        flag = " !" if t.escalated else ""
        click.echo(f"#{t.code}  {t.status:<9} {t.category:<11} {t.channel:<11} {where:<16} "
                   f"{mask(t.caller)}  {data['created_at']}{flag}")
    if not found:
        click.echo("no tickets")


commands = [tickets_group]
