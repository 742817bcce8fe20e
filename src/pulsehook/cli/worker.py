"""``pulsehook worker``: the background half of the service, in its own process.

For ``pulsehook serve --no-worker`` deployments: this process processes what
the server stored, evaluates rules, sends notices, keeps the summary and runs
the scans. Without the server's wake-up it looks for new deliveries every
``--poll`` seconds; both processes share the SQLite file (WAL, busy timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import click

from ..errors import PulsehookError
from . import _logging, _rules, _settings, main


@main.command()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The service's data directory (created if missing) [PULSEHOOK_DATA_DIR, else ./data].",
)
@click.option(
    "--rules-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Directory of rule files [PULSEHOOK_RULES_DIR, else ./rules].",
)
@click.option(
    "--poll",
    type=click.FloatRange(min=0, min_open=True),
    default=0.5,
    show_default=True,
    help="Seconds between looks for new deliveries.",
)
@click.pass_context
def worker(ctx: click.Context, data_dir: Path | None, rules_dir: Path | None, poll: float) -> None:
    """Process stored deliveries, send alerts, keep the summary (no HTTP)."""
    from ..events import Topic
    from ..runtime import LOOPS, Runtime

    # The webhook secret only guards the HTTP endpoint, which this process has not.
    settings = _settings(ctx, data_dir=data_dir, rules_dir=rules_dir, worker=True, insecure=True)
    redactor = _logging(settings)
    rules = _rules(settings, redactor)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            runtime = Runtime(settings, rules=rules)
        except PulsehookError as exc:
            raise click.ClickException(str(exc)) from exc
        async with runtime:
            await runtime.start(LOOPS)
            click.echo(f"pulsehook worker: processing {settings.db_path}", err=True)
            while not stop.is_set():
                # The server's commits wake its own worker, not this process's.
                runtime.events.publish(Topic.DELIVERIES)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(poll):
                        await stop.wait()

    asyncio.run(run())
