"""`hotline user add | list | passwd | remove`: dashboard accounts, passwords typed twice or piped in."""

from __future__ import annotations

import sys

import click

from gateway import accounts
from gateway.cli.common import hotline

REASONS = {
    "bad_name": "a name is 1-40 letters, digits, '.', '@', '_' or '-'",
    "bad_role": f"the role is one of {', '.join(accounts.ROLES)}",
    "short_password": f"the password needs at least {accounts.MIN_PASSWORD} characters",
    "needs_village": "a head or leader needs --village",
    "unknown_village": "no such village in the registry (import the registry first)",
    "exists": "an account with that name exists (use `hotline user passwd NAME`)",
    "unknown": "no such account",
}


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    value: str = click.prompt("password", hide_input=True, confirmation_prompt="again")
    return value


def _fail(exc: accounts.AccountError) -> None:
    click.echo(f"hotline: {REASONS.get(exc.reason, exc.reason)}", err=True)
    sys.exit(2)


@click.group("user")
def user_group() -> None:
    """Dashboard accounts."""


@user_group.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(accounts.ROLES))
@click.option("--village", help="the village of a head or leader (name as in the registry, or id)")
@click.option("--password-stdin", is_flag=True, help="read the password as one line from stdin")
def add(name: str, role: str, village: str | None, password_stdin: bool) -> None:
    """Add a dashboard account; the password is asked twice unless piped in."""
    hl = hotline()
    if role != "admin" and not village:
        _fail(accounts.AccountError("needs_village"))
    if accounts.get(hl, name):
        _fail(accounts.AccountError("exists"))
    try:
        user = accounts.create(hl, name, role, _password(password_stdin), village)
    except accounts.AccountError as exc:
        _fail(exc)
        return
    where = f" for {user.village}" if user.village else ""
    click.echo(f"added {user.name} ({user.role}{where})")


@user_group.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="read the password as one line from stdin")
def passwd(name: str, password_stdin: bool) -> None:
    """Set a new password for an account."""
    hl = hotline()
    if not accounts.get(hl, name):
        _fail(accounts.AccountError("unknown"))
    try:
        accounts.set_password(hl, name, _password(password_stdin))
    except accounts.AccountError as exc:
        _fail(exc)
    click.echo(f"password changed for {name}")


@user_group.command("list")
def list_command() -> None:
    """Every account with its role and village."""
    for user in accounts.list_users(hotline()):
        click.echo(f"{user.name:<20} {user.role:<7} {user.village}")


@user_group.command("remove")
@click.argument("name")
def remove(name: str) -> None:
    """Delete an account."""
    if not accounts.delete(hotline(), name):
        _fail(accounts.AccountError("unknown"))
    click.echo(f"removed {name}")


commands = [user_group]
