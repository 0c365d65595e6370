"""The `hotline` command: a thin layer that parses arguments and calls the domain."""

from __future__ import annotations

import sys

import click

from gateway import logs
from gateway.cli import channels, messages, notices, prompts, registry, service, tickets, users
from gateway.settings import ConfigError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """hotline: the village help-line gateway."""


# Each area keeps its commands in a module of its own, exposing `commands`.
for _area in (service, registry, tickets, messages, notices, users, channels, prompts):
    for _command in _area.commands:
        cli.add_command(_command)


# Long-running commands log what they do; one-shot commands speak only when something is wrong.
SERVICES = ("run", "serve", "worker", "watch")


def main() -> None:
    chatty = any(arg in SERVICES for arg in sys.argv[1:3])
    logs.setup(default="INFO" if chatty else "WARNING")
    try:
        cli(standalone_mode=True)
    except ConfigError as exc:
        click.echo(f"hotline: bad setting {exc}", err=True)
        sys.exit(2)
