"""`hotline registry import FILE`: the ledger from CSV or XLSX, all rows or none."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gateway.cli.common import hotline, settings
from gateway.registry_file import RegistryFileError, import_file


@click.group("registry")
def registry_group() -> None:
    """The ledger of villages, grids, teams and residents."""


@registry_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def import_command(file: Path) -> None:
    """Import FILE (CSV or XLSX); a file with any bad row imports nothing."""
    if not file.exists():
        click.echo(f"hotline: no such file: {file}", err=True)
        sys.exit(2)
    hl = hotline()
    try:
        s = settings()
        report = import_file(hl.r, file, s.default_region, max_rows=s.import_max_rows,
                             max_cell=s.import_max_cell)
    except RegistryFileError as exc:
        click.echo(f"hotline: {file}: {exc}; nothing imported", err=True)
        sys.exit(1)
    if not report.ok:
        click.echo(f"hotline: {file}: {len(report.errors)} bad row(s); nothing imported", err=True)
        for number, reason in report.errors:
            click.echo(f"  row {number}: {reason}", err=True)
        sys.exit(1)
    click.echo(f"imported {file}: {report.added} added, {report.updated} updated, "
               f"{report.unchanged} unchanged")


commands = [registry_group]
