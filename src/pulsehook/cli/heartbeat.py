"""``pulsehook heartbeat PATH``: a script's heartbeat, sent to a running pulsehook.

For scripts and cron lines that would rather not write ``curl``: the same ping
as ``POST /api/v1/heartbeats/{owner}/{repo}/{path}`` (``--start`` opens a timed
run, ``--fail`` or ``--exit-status N`` reports the outcome), retried a few times
when the service cannot be reached or answers 5xx, never when it refuses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import quote

import click
import httpx

from ..settings import Settings
from . import main
from .params import HTTP_URL

# Where ``serve`` listens by default (its settings' defaults).
DEFAULT_URL = (
    f"http://{Settings.model_fields['host'].default}:{Settings.model_fields['port'].default}"
)
ATTEMPTS = 4  # one try and three retries: 1 s, 2 s, 4 s apart
TIMEOUT_SECONDS = 10.0
RETRIED = {408, 429, 500, 502, 503, 504}


def ping_url(base: str, path: str, signal: str | None) -> str:
    """The heartbeat URL of ``owner/repo/path`` on ``base``, with the signal's segment."""
    quoted = "/".join(quote(part, safe="") for part in path.split("/"))
    tail = f"/{signal}" if signal is not None else ""
    return f"{base.rstrip('/')}/api/v1/heartbeats/{quoted}{tail}"


def send(
    url: str,
    token: str,
    note: str | None,
    *,
    attempts: int = ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
) -> httpx.Response | str:
    """POST the ping; the answer, or why there was none after every attempt."""
    problem = "not tried"
    for attempt in range(attempts):
        if attempt:
            sleep(2.0 ** (attempt - 1))
        try:
            rsp = httpx.post(
                url,
                json={"note": note} if note else {},
                headers={"Authorization": f"Bearer {token}", "User-Agent": "pulsehook"},
                timeout=TIMEOUT_SECONDS,
            )
        except httpx.HTTPError as exc:
            problem = f"{type(exc).__name__}: {exc}"
            continue
        if rsp.status_code not in RETRIED:
            return rsp
        problem = f"HTTP {rsp.status_code}"
    return problem


@main.command()
@click.argument("path")
@click.option("--start", "signal", flag_value="start", help="A run begins: time it.")
@click.option("--fail", "signal", flag_value="fail", help="The run failed.")
@click.option(
    "--exit-status",
    type=click.IntRange(0, 255),
    default=None,
    help="The command's exit status: 0 is success, anything else a failure.",
)
@click.option("--note", default=None, help="A line to show with the item.")
@click.option(
    "--url",
    type=HTTP_URL,
    default=None,
    help=f"pulsehook's address [PULSEHOOK_PUBLIC_URL, else {DEFAULT_URL}].",
)
@click.option(
    "--token",
    envvar="PULSEHOOK_HEARTBEAT_TOKEN",
    default=None,
    help="A heartbeat token [PULSEHOOK_HEARTBEAT_TOKEN, else the first of"
    " PULSEHOOK_HEARTBEAT_TOKENS].",
)
@click.pass_context
def heartbeat(
    ctx: click.Context,
    path: str,
    signal: str | None,
    exit_status: int | None,
    note: str | None,
    url: str | None,
    token: str | None,
) -> None:
    """Send a heartbeat for PATH (owner/repo/path), as a cron job's last line would.

    \b
      pulsehook heartbeat acme/backups/nightly --start
      ./backup.sh; pulsehook heartbeat acme/backups/nightly --exit-status $?

    Exit 0 when pulsehook stored it, 1 when it refused it or could not be reached.
    """
    from . import _settings

    if signal is not None and exit_status is not None:
        raise click.UsageError("give --start, --fail or --exit-status, not two of them")
    if path.count("/") < 2 or any(not part for part in path.split("/")):
        raise click.UsageError(f"PATH {path!r} must be owner/repo/path, e.g. acme/backups/nightly")
    settings = _settings(ctx)
    if token is None:
        known = settings.heartbeat_token_list()
        token = known[0].decode() if known else None
    if not token:
        raise click.UsageError("no token: give --token or set PULSEHOOK_HEARTBEAT_TOKEN")
    segment = signal if exit_status is None else str(exit_status)
    target = ping_url(url or settings.public_url or DEFAULT_URL, path, segment)
    answer = send(target, token, note)
    if isinstance(answer, str):
        raise click.ClickException(f"pulsehook at {target.split('/api/')[0]} not reached: {answer}")
    try:
        body = answer.json()
    except ValueError:
        body = {}
    if answer.status_code != 202:
        found = body.get("error") if isinstance(body, dict) else None
        said = found.get("message") if isinstance(found, dict) else None
        raise click.ClickException(
            f"pulsehook refused the heartbeat (HTTP {answer.status_code}):"
            f" {said or answer.text[:200]}"
        )
    if body.get("started"):
        click.echo(f"{path}: run started")
        return
    ran = body.get("run_seconds")
    click.echo(f"{path}: {body.get('report')}" + (f", ran {ran:.1f} s" if ran is not None else ""))
