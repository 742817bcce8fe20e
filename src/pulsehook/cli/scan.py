"""``pulsehook scan``: backfill from the GitHub API; ``pulsehook dashboard``."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import (
    _logging,
    _require_database,
    _serve,
    _settings,
    data_dir_option,
    main,
    server_options,
)
from .params import HTTP_URL, REPO, REPO_OR_NAME

DASHBOARD_PORT = 8080  # its own default, so it can run beside a ``serve`` on 8000

if TYPE_CHECKING:
    from ..github.api import Failure
    from ..settings import Settings

ERRORS_SHOWN = 20  # a whole organisation failing the same way says so in a few lines
# What GitHub answers a request without a token for what only a token may see.
NEEDS_TOKEN = {401, 403, 404}


def statuses(errors: Iterable[Failure]) -> set[int]:
    """The HTTP statuses GitHub answered in the scan's errors."""
    return {e.status for e in errors if e.status is not None}


def token_hint(errors: list[Failure], *, token: bool) -> str | None:
    """What to do about the statuses in ``errors``, if the token is the likely cause."""
    found = sorted(statuses(errors) & NEEDS_TOKEN)
    if not found:
        return None
    answered = "/".join(str(s) for s in found)
    if not token:
        return (
            f"GitHub answered {answered} and no token was sent: private repositories and"
            " organisations look missing without one. Set GITHUB_TOKEN to a token that can"
            " read them."
        )
    if 401 in found:
        return "GitHub refused GITHUB_TOKEN (401): it is wrong, expired or revoked."
    return None


def scan_targets(
    ctx: click.Context, settings: Settings, org: str | None, repos: tuple[str, ...]
) -> tuple[str | None, list[str]]:
    """(the organisation to list, the repositories to read). A bare ``--repo`` name
    is the organisation's; named repositories alone are scanned unless ``--org``
    asks for its listing too (``pulse scan --repo shokunin``)."""
    owner = org or settings.scan_org
    bare = [r for r in repos if "/" not in r]
    if bare and not owner:
        raise click.UsageError(
            f"'--repo' {bare[0]!r} names no owner: use owner/name, or give --org"
            " (or PULSEHOOK_SCAN_ORG) for a bare name"
        )
    named = [r if "/" in r else f"{owner}/{r}" for r in repos]
    if named:
        return org, named
    return owner, [REPO.convert(r, None, ctx) for r in settings.scan_repo_list()]


@main.command()
@click.option("--org", default=None, help="Organisation (or user) whose repositories to scan.")
@click.option(
    "--repo",
    "repos",
    multiple=True,
    type=REPO_OR_NAME,
    help="A repository: owner/name, or a name of the --org (or PULSEHOOK_SCAN_ORG)"
    " organisation (repeatable). Without --org, only these are scanned.",
)
@data_dir_option
@click.option("--api-url", type=HTTP_URL, default=None, help="GitHub API URL (GitHub Enterprise).")
@click.pass_context
def scan(
    ctx: click.Context,
    org: str | None,
    repos: tuple[str, ...],
    data_dir: Path | None,
    api_url: str | None,
) -> None:
    """Read repositories, runs, alerts and more from GitHub into the store.

    Exit 1 when a repository (or the listing) could not be read. With
    ``pulsehook --debug scan`` every request to GitHub is logged.
    """
    from ..github.api import GitHubError
    from ..github.backfill import scan_round
    from ..github.scan import ScanReport
    from ..rules.load import RulesInvalid, load_rules
    from ..rules.model import RuleSet
    from ..runtime import Runtime, run_once, scan_pace

    settings = _settings(ctx, data_dir=data_dir)
    org, targets = scan_targets(ctx, settings, org, repos)
    if not org and not targets:
        raise click.UsageError("give --org and/or --repo (or PULSEHOOK_SCAN_ORG/_REPOS)")
    _require_database(settings)
    _logging(settings)  # --debug: the GitHub client logs each request
    try:
        rules = (
            load_rules(settings.rules_dir, os.environ) if settings.rules_dir.exists() else RuleSet()
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

    token = settings.github_token.get_secret_value() if settings.github_token else None

    async def work(runtime: Runtime) -> ScanReport:
        report = await scan_round(
            runtime.writer,
            runtime.readers,
            org=org,
            repos=targets or None,
            token=token,
            api_url=api_url or settings.github_api_url,
            # Run by hand: as long as the share lasts, not a service round's time.
            pace=dataclasses.replace(scan_pace(settings), seconds=None),
            progress=progress,
        )
        # What the scan stored goes through the worker's path: state, rules, health.
        await runtime.process_waiting()
        return report

    try:
        report = run_once(settings, work, rules=rules)
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
    for error in report.errors[:ERRORS_SHOWN]:
        click.echo(f"error: {error}", err=True)
    if len(report.errors) > ERRORS_SHOWN:
        click.echo(f"... and {len(report.errors) - ERRORS_SHOWN} more errors", err=True)
    if (hint := token_hint(report.errors, token=token is not None)) is not None:
        click.echo(hint, err=True)
    if report.errors:
        ctx.exit(1)


@main.command()
@server_options(port=DASHBOARD_PORT)
@click.pass_context
def dashboard(ctx: click.Context, /, **flags: Any) -> None:
    """The same server as ``serve`` (dashboard at /, API, webhooks), on its own port."""
    if flags.get("port") is None and "PULSEHOOK_PORT" not in os.environ:
        flags["port"] = DASHBOARD_PORT
    _serve(ctx, **flags)
