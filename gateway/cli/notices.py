"""`hotline notice ...` and `hotline broadcast render`: a village head's notices, their SMS and
their loudspeaker scripts."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import NoReturn

import click

from gateway import broadcast, notices
from gateway.cli.common import hotline, village_id
from gateway.context import Hotline
from gateway.notices import Notice, NoticeError
from gateway.phones import mask
from gateway.settings import LANGUAGES

SEND_TO = ("team", "residents", "all")


def _fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"hotline: {message}", err=True)
    sys.exit(code)


def _notice(hl: Hotline, nid: str) -> Notice:
    notice = notices.get(hl, nid)
    if notice is None:
        _fail(f"no notice {nid!r} (see: hotline notice list)")
    return notice


def _body(text: str) -> str:
    return sys.stdin.read() if text == "-" else text


@click.group("notice")
def notice_group() -> None:
    """Notices for a village or a town: SMS to the team and residents, loudspeaker scripts."""


@notice_group.command("create")
@click.option("--village", help="a village's name as in the registry, or its id")
@click.option("--town", help="every village of this town (instead of --village)")
@click.option("--title", default="", help="default: the body's first sentence")
@click.option("--body", required=True, help="the notice's text; - reads it from stdin")
@click.option("--send", "send_to", type=click.Choice(notices.AUDIENCES), default="none",
              show_default=True, help="who gets it by SMS, through the workers")
@click.option("--author", default="", help="who signs it (shown in lists)")
@click.option("--language", type=click.Choice(LANGUAGES), help="of the broadcast wording")
def create_command(village: str | None, town: str | None, title: str, body: str, send_to: str,
                   author: str, language: str | None) -> None:
    """Store a notice and print its id alone."""
    if bool(village) == bool(town):
        _fail("give --village or --town (one of them)")
    hl = hotline()
    try:
        if town:
            notice = notices.create_for_town(hl, town, _body(body), title=title, author=author,
                                             audience=send_to, language=language)
        else:
            vid = village_id(hl, village)
            assert vid is not None
            notice = notices.create(hl, vid, _body(body), title=title, author=author,
                                    audience=send_to, language=language)
    except NoticeError as exc:
        _fail(str(exc))
    click.echo(notice.id)


@notice_group.command("from-ticket")
@click.argument("code")
@click.option("--need", default="", help="what is needed, e.g. 退烧药 (default: by category)")
@click.option("--contact", default="", help="who helpers call: a member's name or a phone "
              "(default: the grid's leader)")
@click.option("--send", "send_to", type=click.Choice(notices.AUDIENCES), default="none",
              show_default=True)
@click.option("--author", default="")
def from_ticket_command(code: str, need: str, contact: str, send_to: str, author: str) -> None:
    """A call for help made from ticket CODE, naming no resident; prints the notice id."""
    hl = hotline()
    try:
        notice = notices.from_ticket(hl, code, need=need, contact=contact, author=author,
                                     audience=send_to)
    except NoticeError as exc:
        _fail(str(exc))
    click.echo(notice.id)


@notice_group.command("send")
@click.argument("nid")
@click.option("--to", "send_to", type=click.Choice(SEND_TO), required=True)
def send_command(nid: str, send_to: str) -> None:
    """Send notice NID by SMS through the workers; nobody gets it twice."""
    hl = hotline()
    notice = _notice(hl, nid)
    notices.queue_send(hl, notice.id, send_to)
    click.echo(f"notice {notice.id}: sending to {send_to} queued for the workers "
               f"(hotline notice show {notice.id} tracks each person)")


@notice_group.command("list")
@click.option("--village", help="a village's name as in the registry, or its id")
@click.option("--json", "as_json", is_flag=True, help="one JSON array")
@click.option("--limit", default=50, show_default=True)
def list_command(village: str | None, as_json: bool, limit: int) -> None:
    """Notices, newest first, with how many people each reached."""
    hl = hotline()
    found = notices.list_notices(hl, village_id(hl, village), limit=limit)
    if as_json:
        rows = [n.to_json(hl) | {"deliveries": notices.delivery_counts(hl, n.id)} for n in found]
        click.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    for n in found:
        data = n.to_json(hl)
        counts = notices.delivery_counts(hl, n.id)
        sent = " ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "not sent"
        click.echo(f"{n.id:>4}  {data['created_at'][:16]}  {n.village:<8} {n.audience:<9} "
                   f"{n.title}  [{sent}]")
    if not found:
        click.echo("no notices")


@notice_group.command("show")
@click.argument("nid")
@click.option("--json", "as_json", is_flag=True)
def show_command(nid: str, as_json: bool) -> None:
    """A notice and, for each person it was sent to, the status of their SMS."""
    hl = hotline()
    notice = _notice(hl, nid)
    rows = notices.delivery_report(hl, notice.id)
    if as_json:
        data = notice.to_json(hl) | {"deliveries": [
            {"phone": r.phone, "name": r.name, "message": r.message_id or None,
             "status": r.status, "error": r.error or None} for r in rows]}
        click.echo(json.dumps(data, ensure_ascii=False, indent=1))
        return
    data = notice.to_json(hl)
    click.echo(f"notice {notice.id}  {notice.village}  {data['created_at']}  "
               f"by {notices.author_label(hl, notice) or '-'}")
    click.echo(notice.title)
    click.echo(notice.body)
    click.echo("")
    for r in rows:
        click.echo(f"  {mask(r.phone):<17} {r.name:<6} {r.status:<11} {r.message_id} {r.error}")
    if not rows:
        click.echo("  not sent by SMS")


@click.group("broadcast")
def broadcast_group() -> None:
    """Loudspeaker (村村响) scripts of a notice."""


@broadcast_group.command("render")
@click.argument("nid")
@click.option("--format", "fmt", type=click.Choice(broadcast.FORMATS), required=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="write here (default: stdout)")
@click.option("--repeat", type=click.IntRange(1, 9),
              help="how many times the notice is read (default HOTLINE_BROADCAST_REPEAT)")
@click.option("--paper", type=click.Choice(("A4", "A5")), default="A4", show_default=True,
              help="page size of the pdf")
@click.option("--language", type=click.Choice(LANGUAGES), help="default: the notice's")
def render_command(nid: str, fmt: str, output: Path | None, repeat: int | None, paper: str,
                   language: str | None) -> None:
    """Render notice NID as the script read aloud (txt), a print page (html, pdf) or audio (wav)."""
    hl = hotline()
    notice = _notice(hl, nid)
    if output is None and fmt in broadcast.BINARY and sys.stdout.isatty():
        _fail(f"{fmt} is binary: give -o FILE or redirect stdout to a file")
    try:
        data = broadcast.render(hl.settings, notice, fmt, repeat=repeat, language=language,
                                paper=paper)
    except broadcast.MissingPackage as exc:
        _fail(f"cannot render {fmt}: {exc}", 1)
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    try:
        output.write_bytes(data)
    except OSError as exc:
        _fail(f"cannot write {output}: {exc.strerror}", 1)
    click.echo(f"wrote {output} ({len(data):,} bytes)", err=True)


commands = [notice_group, broadcast_group]
