"""``pulsehook summary``: print or publish the status summary."""

from __future__ import annotations

from pathlib import Path

import click

from . import _existing, data_dir_option, main


@main.group(invoke_without_command=True)
@click.option("--mode", type=click.Choice(["md", "org"]), default="md", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print summary.md.json instead.")
@data_dir_option
@click.pass_context
def summary(ctx: click.Context, mode: str, as_json: bool, data_dir: Path | None) -> None:
    """Print the current summary from the store."""
    # Kept for a subcommand: ``summary --data-dir X publish`` publishes X's summary.
    ctx.obj["summary_data_dir"] = data_dir
    if ctx.invoked_subcommand is not None:
        return
    from ..rules.model import RuleSet
    from ..runtime import Runtime, run_once
    from ..summary.service import Target, preview, previous_summary

    settings = _existing(ctx, data_dir)
    target = Target(owner=settings.summary_owner, repo=settings.summary_repo, tz=settings.timezone)
    previous = previous_summary(settings.data_dir)

    async def work(runtime: Runtime) -> str:
        now = runtime.clock.now()
        return await runtime.read(
            lambda d: preview(
                d, now=now, target=target, previous=previous, mode="json" if as_json else mode
            )
        )

    click.echo(run_once(settings, work, rules=RuleSet()))


@summary.command("publish")
@data_dir_option
@click.pass_context
def publish(ctx: click.Context, data_dir: Path | None) -> None:
    """Push the latest summary to the configured GitHub repository now."""
    from ..errors import ConfigError
    from ..rules.model import RuleSet
    from ..runtime import Runtime, publish_target, published, run_once
    from ..summary.publish import PublishResult
    from ..summary.service import FILES

    settings = _existing(ctx, data_dir or ctx.obj.get("summary_data_dir"))
    try:
        target = publish_target(settings)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    if target is None:
        raise click.ClickException("nothing to publish to: set PULSEHOOK_PUBLISH_REPO=owner/repo")
    files = {
        name: path.read_text(encoding="utf-8")
        for name in FILES
        if (path := settings.data_dir / name).exists()
    }
    if len(files) < len(FILES):
        raise click.ClickException(f"no summary in {settings.data_dir} yet: start the service")

    async def work(runtime: Runtime) -> PublishResult:
        assert runtime.publisher is not None  # the target above is the runtime's
        runtime.publisher.offer(published(files))
        return await runtime.publisher.publish_now()

    result = run_once(settings, work, rules=RuleSet())
    if not result.ok:
        raise click.ClickException(f"publishing to {target.where} failed: {result.error}")
    changed = ", ".join(result.changed) or "nothing (already up to date)"
    click.echo(f"published to {target.where}: {changed}")
