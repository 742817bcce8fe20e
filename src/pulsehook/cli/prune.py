"""``pulsehook prune``: what the service's daily retention run does, now."""

from __future__ import annotations

from pathlib import Path

import click

from ..alerts.lifecycle import EVENT_KINDS
from ..errors import PulsehookError
from ..rules.model import RuleSet
from ..runtime import Runtime, run_once
from ..settings import Settings
from ..store import vitals
from ..store.retention import MIN_DAYS, Pruner, check_days
from ..store.vitals import FilePages
from . import _logging, _require_database, _rules, _settings, data_dir_option, main

# A turn's length: the service, if it runs, takes its turns on the database between.
TURN_SECONDS = 0.01


@main.command()
@data_dir_option
@click.option(
    "--days",
    type=int,
    default=None,
    help=f"Prune what is older than this (at least {MIN_DAYS})"
    f" [PULSEHOOK_RETENTION_DAYS, else {Settings.model_fields['retention_days'].default}].",
)
@click.option("--dry-run", is_flag=True, help="Count what would go; delete nothing.")
@click.pass_context
def prune(ctx: click.Context, data_dir: Path | None, days: int | None, dry_run: bool) -> None:
    """Prune deliveries and history older than the retention, keeping the state.

    What the current state is made of stays, so `pulsehook replay` still rebuilds
    it. Safe while the service runs: it carries on the service's run if one is
    under way, in short transactions.
    """
    settings = _settings(ctx, data_dir=data_dir)
    redactor = _logging(settings)
    days = settings.retention_days if days is None else days
    try:
        check_days(days)
    except PulsehookError as exc:
        raise click.UsageError(str(exc)) from exc
    if days == 0:
        click.echo("retention is off (0 days): nothing is pruned")
        return
    _require_database(settings)
    try:
        # Alerts of rules on one-shot facts (pushes, repository events) never resolve:
        # past the retention they are history. Without the rules they are kept.
        rules = _rules(settings, redactor).rules
        names = frozenset(r.name for r in rules if r.fact in EVENT_KINDS)
    except PulsehookError as exc:
        click.echo(f"rules not loaded ({exc}); alerts of one-shot rules are kept", err=True)
        names = frozenset()
    pruner = Pruner(dry_run=dry_run, event_rules=names)

    async def work(runtime: Runtime) -> tuple[bool, FilePages, FilePages]:
        before = await runtime.read(vitals.file_pages)
        now = runtime.clock.now()
        begun = await runtime.write(lambda d: pruner.begin(d, days=days, now=now))
        while await runtime.write(lambda d: pruner.step(d, now=now, budget=TURN_SECONDS)):
            pass
        return begun, before, await runtime.read(vitals.file_pages)

    begun, before, after = run_once(settings, work, rules=RuleSet())
    if not begun:
        click.echo("a retention run is under way: carrying it on (its cutoff holds)")
    # Pages given back to the file system, and pages freed inside the file.
    freed = (before.total - after.total + after.free - before.free) * after.size
    _report(pruner, dry_run=dry_run, days=days, freed=freed, postgres=bool(settings.postgres_url))


def _report(pruner: Pruner, *, dry_run: bool, days: int, freed: int, postgres: bool) -> None:
    c = pruner.counts
    verb = "would prune" if dry_run else "pruned"
    click.echo(f"{verb} what is older than {days} days:")
    click.echo(f"  deliveries        {c.deliveries:>10}  ({c.payload_bytes} bytes of payloads)")
    click.echo(f"  kept (old)        {c.kept:>10}  the current state is made of them")
    for table, n in sorted(c.rows.items()):
        click.echo(f"  {table:<17} {n:>10}")
    if not dry_run:
        click.echo(f"  coverage changes  {c.rebased:>10}  re-based on the figures left")
        if postgres:
            click.echo(
                f"{freed} bytes freed; PostgreSQL's autovacuum makes the space of deleted rows"
                " reusable, and the database shrinks only with VACUUM FULL"
            )
            return
        click.echo(
            f"{freed} bytes freed ({c.free_pages} free pages): SQLite reuses them before the"
            " file grows; the file shrinks only with auto_vacuum = INCREMENTAL or a VACUUM"
        )
