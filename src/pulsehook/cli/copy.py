"""``pulsehook copy --to postgresql://…``: the SQLite store into an empty PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path

import click

from ..settings import redacted
from . import NoDatabase, _settings, data_dir_option, main


class Refused(click.ClickException):
    """The target is not an empty database: exit 2, as for a wrong argument."""

    exit_code = 2


@main.command("copy")
@click.option(
    "--to",
    "target",
    required=True,
    metavar="URL",
    help="The empty PostgreSQL database to copy into (postgresql://user:password@host/db).",
)
@data_dir_option
@click.pass_context
def copy_command(ctx: click.Context, target: str, data_dir: Path | None) -> None:
    """Copy the SQLite store (deliveries, alerts, outbox, silences, history) into an
    empty PostgreSQL database, then point DATABASE_URL at it.

    Stop the service first: what it stores after the copy's snapshot stays
    behind. The copy is one transaction: all of it lands, or nothing.
    """
    from ..errors import StorageUnavailable
    from ..store.copy import TargetNotEmpty, copy_store

    if target.partition("://")[0] not in ("postgresql", "postgres"):
        raise click.BadParameter("must be a postgresql:// URL", param_hint="--to")
    source = _settings(ctx, data_dir=data_dir).db_path
    if not source.is_file():
        raise NoDatabase(f"no SQLite store at {source.absolute()} to copy (or pass --data-dir)")
    started = time.monotonic()
    try:
        copied = copy_store(
            source, target, progress=lambda table, n: click.echo(f"  {table:<22} {n:>10} rows")
        )
    except TargetNotEmpty as exc:
        raise Refused(f"nothing copied: {exc}") from exc
    except StorageUnavailable as exc:
        raise click.ClickException(f"nothing copied: {redacted(target)}: {exc}") from exc
    total = sum(copied.rows.values())
    click.echo(
        f"copied {source} into {redacted(target)}: {total} rows in {len(copied.rows)} tables"
        f" in {time.monotonic() - started:.1f} s; now set DATABASE_URL to it and start the service"
    )
