"""``pulsehook backup DEST``: a consistent copy of the database, the service running."""

from __future__ import annotations

from pathlib import Path

import click

from . import _existing, data_dir_option, main

MIB = 1024 * 1024


@main.command()
@click.argument("dest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace DEST if it exists.")
@data_dir_option
@click.pass_context
def backup(ctx: click.Context, dest: Path, force: bool, data_dir: Path | None) -> None:
    """Copy the live database to the file DEST, safely while the service runs.

    One snapshot (SQLite's online backup), checked with PRAGMA integrity_check
    before it takes DEST's name. Restore: stop the service, remove pulsehook.db-wal
    and pulsehook.db-shm, put the copy in place as pulsehook.db, start it.
    """
    from ..store.backup import backup as take

    settings = _existing(ctx, data_dir)
    if settings.postgres_url is not None:
        raise click.ClickException(
            f"backup copies the SQLite file; the store is PostgreSQL ({settings.database}):"
            " back it up with pg_dump or the server's own backups"
        )
    if dest.exists() and not force:
        raise click.ClickException(f"{dest} exists: pass --force to replace it")
    copy = take(settings.db_path, dest, busy_timeout_ms=settings.busy_timeout_ms)
    click.echo(
        f"backed up {settings.db_path} to {copy.path.absolute()}:"
        f" {copy.bytes / MIB:.1f} MiB ({copy.bytes} bytes) in {copy.seconds:.2f} s"
        f" (snapshot {copy.snapshot_seconds:.2f} s, integrity_check ok"
        f" {copy.check_seconds:.2f} s, written to disk {copy.sync_seconds:.2f} s)"
    )
