"""``pulsehook scan``: backfill from the GitHub API; ``pulsehook dashboard``."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

import click

from ..clock import SystemClock
from . import _serve, _server_options, _settings, main


@main.command()
@click.option("--org", default=None, help="Organisation (or user) whose repositories to scan.")
@click.option("--repo", "repos", multiple=True, help="A repository owner/name (repeatable).")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
@click.option("--api-url", default=None, help="GitHub API URL (GitHub Enterprise).")
@click.pass_context
def scan(
    ctx: click.Context,
    org: str | None,
    repos: tuple[str, ...],
    data_dir: Path | None,
    api_url: str | None,
) -> None:
    """Read repositories, runs, alerts and more from GitHub into the store."""
    from ..alerts.engine import Policy
    from ..github.api import GitHubError
    from ..github.backfill import run_scan
    from ..ingest import Alerting, Worker
    from ..rules.load import RulesInvalid, load_rules
    from ..rules.model import RuleSet
    from ..schedule.maths import parse_duration
    from ..store.db import Writer

    settings = _settings(ctx, data_dir=data_dir)
    org = org or settings.scan_org
    targets = list(repos) or settings.scan_repo_list()
    if not org and not targets:
        raise click.UsageError("give --org and/or --repo (or PULSEHOOK_SCAN_ORG/_REPOS)")
    try:
        rules = (
            load_rules(settings.rules_dir, os.environ, timezone=settings.timezone)
            if settings.rules_dir.exists()
            else RuleSet()
        )
    except RulesInvalid as exc:
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        sys.exit(1)
    bar: Any = None

    def progress(done: int, total: int, name: str) -> None:
        nonlocal bar
        if bar is None and sys.stderr.isatty():
            bar = click.progressbar(
                length=total, label="scanning", file=sys.stderr, item_show_func=lambda n: n
            )
            bar.__enter__()
        if bar is not None:
            bar.update(1, name)
        else:
            click.echo(f"[{done}/{total}] {name}", err=True)

    async def process(writer: Writer) -> None:
        # What the scan stored goes through the worker's path: state, rules, health.
        alerting = Alerting(
            rules=rules,
            policy=Policy(flap=parse_duration(settings.flap_interval), timezone=settings.timezone),
        )
        await Worker(writer, SystemClock(), alerting=alerting).drain()

    token = settings.github_token.get_secret_value() if settings.github_token else None
    try:
        report = run_scan(
            settings.db_path,
            org=org,
            repos=targets or None,
            token=token,
            api_url=api_url or settings.github_api_url,
            # Run by hand: as long as the share lasts, not a service round's time.
            pace=dataclasses.replace(settings.scan_pace(), seconds=None),
            progress=progress,
            process=process,
        )
    except GitHubError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    click.echo(
        f"scanned {len(report.repos)} repositories: "
        + (", ".join(f"{n} {kind}" for kind, n in sorted(report.counts.items())) or "nothing new")
    )
    if report.backlog:
        click.echo(
            f"{report.backlog} of {report.listed} repositories left for the next scan"
            f" ({report.stopped}: {report.spent} of the scan's {report.allowed} requests"
            " this hour)"
        )
    for error in report.errors:
        click.echo(f"warning: {error}", err=True)


@main.command()
@_server_options
@click.pass_context
def dashboard(ctx: click.Context, /, **flags: Any) -> None:
    """The same server as ``serve`` (dashboard at /, API, webhooks); default port 8080."""
    if flags.get("port") is None and "PULSEHOOK_PORT" not in os.environ:
        flags["port"] = 8080
    _serve(ctx, **flags)
