"""``pulsehook rules|silence|digest|notify``: the alerting commands."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from ..clock import SystemClock, iso
from ..errors import UnsupportedEvent
from ..facts import FACT_TYPES, Fact, fact_dict
from ..github.normalize import normalize
from ..notify.base import ChannelConfig, Message, SendResult
from ..rules.evaluate import Evaluator
from ..rules.load import RulesInvalid, load_rules
from ..rules.messages import render
from ..rules.model import RuleSet
from ..runtime import Runtime, run_once
from ..timing import iso_duration
from . import _existing, _require_database, _settings, data_dir_option, main
from .params import CRON, DURATION, TIME

RULES_DIR_HELP = "Directory of rule files [PULSEHOOK_RULES_DIR, else ./rules]."
# A silence's fields as ``silence add`` takes them, for the shared check's messages.
FLAGS = {
    "rule": "--rule",
    "repo": "--repo",
    "ends_at": "--until",
    "duration": "--for",
    "cron": "--cron",
}


def _load(ctx: click.Context, directory: Path | None) -> RuleSet:
    settings = _settings(ctx)
    try:
        return load_rules(directory or settings.rules_dir, os.environ)
    except RulesInvalid as exc:
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        sys.exit(1)


@main.group()
def rules() -> None:
    """Check and try alert rules."""


@rules.command("check")
@click.argument("directory", type=click.Path(path_type=Path), required=False)
@click.pass_context
def rules_check(ctx: click.Context, directory: Path | None) -> None:
    """Validate the rule files in DIRECTORY (default: the rules dir). Exit 1 if invalid."""
    rule_set = _load(ctx, directory)
    for warning in rule_set.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(
        f"ok: {len(rule_set.rules)} rule(s); channels: "
        f"{', '.join(sorted(rule_set.channels)) or 'none configured'}"
    )
    for rule in rule_set.rules:
        click.echo(f"  {rule.name}: {rule.fact} -> {', '.join(rule.channels)} ({rule.frequency})")


def _facts(payload: Path | None, event: str | None, fact: str | None) -> list[Fact]:
    if fact:
        kind, _, raw = fact.partition("=")
        if kind not in FACT_TYPES or not raw:
            raise click.UsageError("--fact takes KIND=JSON, e.g. build='{\"status\": ...}'")
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise click.UsageError(f"--fact JSON is invalid: {exc}") from exc
        if not isinstance(data, dict):
            raise click.UsageError("--fact JSON must be an object")
        fields = {f.name: data.get(f.name) for f in dataclasses.fields(FACT_TYPES[kind])}
        built: Fact = FACT_TYPES[kind](**fields)
        return [built]
    if payload is None or not event:
        raise click.UsageError("give a payload file and --event, or --fact KIND=JSON")
    try:
        document = json.loads(payload.read_bytes())
    except ValueError as exc:
        raise click.UsageError(f"{payload} is not a JSON document: {exc}") from exc
    try:
        return normalize(event, document)
    except UnsupportedEvent as exc:
        raise click.ClickException(f"nothing to evaluate: {exc}") from exc


@rules.command("test")
@click.argument("payload", type=click.Path(exists=True, path_type=Path), required=False)
@click.option("--event", help="The X-GitHub-Event of the payload (workflow_run, ...).")
@click.option("--fact", "fact", help="A fact instead of a payload: KIND=JSON.")
@click.option("--rules-dir", type=click.Path(path_type=Path), default=None, help=RULES_DIR_HELP)
@click.pass_context
def rules_test(
    ctx: click.Context,
    payload: Path | None,
    event: str | None,
    fact: str | None,
    rules_dir: Path | None,
) -> None:
    """Show which rules fire on a payload and the exact messages — sends nothing.

    Each rule is judged as the service judges it (its repos and exclude_repos, a
    fact that closes its subject); what an alert's past would change — a
    firing alert resolving, flap damping, silences — is said, not looked up.
    """
    from ..alerts.engine import verdict

    rule_set = _load(ctx, rules_dir)
    evaluator, fired = Evaluator(), 0
    for item in _facts(payload, event, fact):
        data = fact_dict(item)
        click.echo(f"fact {item.name}: {json.dumps(data, default=str)}")
        for rule in rule_set.by_fact(item.name):
            said = verdict(rule, data, evaluator)
            if not said.applies:
                click.echo(f"  skip  {rule.name}: {data.get('repo')} is not among its repos")
                continue
            if said.error is not None:
                click.echo(f"  ERROR {rule.name}: {said.error}")
                continue
            if not said.fires:
                ends = " (resolves its alert if one is firing)" if said.ends else ""
                click.echo(f"  no    {rule.name}{ends}")
                continue
            fired += 1
            message = render(rule, "firing", data)
            click.echo(f"  FIRES {rule.name} -> {', '.join(rule.channels)} ({rule.frequency})")
            click.echo(f"    title:    {message.title}")
            click.echo(f"    markdown: {message.markdown}")
    click.echo(f"{fired} rule(s) would fire; nothing was sent.")


@main.group()
def silence() -> None:
    """Hold notifications back (alerts are still recorded)."""


@silence.command("add")
@click.option("--rule", help="Rule name pattern (fnmatch), e.g. build_*.")
@click.option("--repo", help="Repository pattern, e.g. octo-org/*.")
@click.option(
    "--for", "length", type=DURATION, help="How long, from now: 30m, 2h, 1d, 1h30m or PT30M."
)
@click.option(
    "--until",
    type=TIME,
    help="Until this ISO-8601 time (2026-03-01T18:00Z; without an offset, PULSEHOOK_TIMEZONE).",
)
@click.option(
    "--cron", type=CRON, help="Recurring: start at each cron time (with --for as length)."
)
@click.option("--comment", default=None)
@data_dir_option
@click.pass_context
def silence_add(
    ctx: click.Context,
    rule: str | None,
    repo: str | None,
    length: timedelta | None,
    until: datetime | None,
    cron: str | None,
    comment: str | None,
    data_dir: Path | None,
) -> None:
    """Add a silence: for a time (--for, --until) or recurring (--cron with --for)."""
    from ..alerts import silences
    from ..errors import SilenceInvalid
    from ..store import silences as silence_store

    # What was asked is checked before the store is looked for: a usage error first.
    settings = _settings(ctx, data_dir=data_dir)
    now = SystemClock().now()
    if until is not None and until.tzinfo is None:
        until = until.replace(tzinfo=ZoneInfo(settings.timezone))
    try:
        held = silences.window(
            rule=rule,
            repo=repo,
            now=now,
            ends_at=until,
            duration=length,
            cron=cron,
            names=FLAGS,
        )
    except SilenceInvalid as exc:
        if exc.field is not None:
            raise click.BadParameter(exc.detail, param_hint=f"'{FLAGS[exc.field]}'") from exc
        raise click.UsageError(str(exc)) from exc
    _require_database(settings)

    async def work(runtime: Runtime) -> int:
        return await runtime.write(
            lambda d: silence_store.create(
                d,
                rule=rule,
                repo=repo,
                starts_at=held.starts_at,
                ends_at=held.ends_at,
                cron=held.cron,
                duration=held.duration,
                comment=comment,
                now=now,
            )
        )

    silence_id = run_once(settings, work, rules=RuleSet())
    when = [f"at each '{cron}' for {iso_duration(length)}"] if cron and length else []
    when += [f"until {iso(held.ends_at)}"] if held.ends_at is not None else []
    click.echo(f"silence {silence_id} added: {', '.join(when)} ({settings.db_path})")


@silence.command("list")
@data_dir_option
@click.pass_context
def silence_list(ctx: click.Context, data_dir: Path | None) -> None:
    """List the silences not yet ended."""
    from ..alerts import silences

    settings = _existing(ctx, data_dir)

    async def work(runtime: Runtime) -> list[dict[str, Any]]:
        now = runtime.clock.now()
        return await runtime.read(lambda d: silences.listing(d, now, settings.timezone))

    for row in run_once(settings, work, rules=RuleSet()):
        state = "active" if row["active"] else "inactive"
        click.echo(
            f"{row['id']}: rule={row['rule'] or '*'} repo={row['repo'] or '*'}"
            f" until={row['ends_at'] or '-'} cron={row['cron'] or '-'} [{state}]"
            f" {row['comment'] or ''}"
        )


@silence.command("delete")
@click.argument("silence_id", type=click.IntRange(min=1))
@data_dir_option
@click.pass_context
def silence_delete(ctx: click.Context, silence_id: int, data_dir: Path | None) -> None:
    """Delete the silence SILENCE_ID (see silence list)."""
    from ..store import silences as silence_store

    settings = _existing(ctx, data_dir)

    async def work(runtime: Runtime) -> bool:
        return await runtime.write(lambda d: silence_store.delete(d, silence_id))

    if not run_once(settings, work, rules=RuleSet()):
        raise click.ClickException(f"no silence {silence_id}")
    click.echo(f"silence {silence_id} deleted")


@main.group()
def digest() -> None:
    """Digest notices."""


@digest.command("send")
@click.option(
    "--now", "now_flag", is_flag=True, required=True, help="Send every pending digest entry now."
)
@data_dir_option
@click.option("--rules-dir", type=click.Path(path_type=Path), default=None, help=RULES_DIR_HELP)
@click.pass_context
def digest_send(
    ctx: click.Context,
    now_flag: bool,  # noqa: ARG001 — required, so that sending is asked for by name
    data_dir: Path | None,
    rules_dir: Path | None,
) -> None:
    """Gather pending digest entries into digests now, and send them."""
    from ..alerts import digest as digests
    from ..store import outbox

    settings = _existing(ctx, data_dir, rules_dir=rules_dir)
    rule_set = _load(ctx, settings.rules_dir)

    async def work(runtime: Runtime) -> tuple[int, list[dict[str, Any]]]:
        now = runtime.clock.now()
        queued = await runtime.write(lambda d: digests.send_now(d, rule_set, now=now))
        if not queued:
            return 0, []
        # The service's own dispatcher: its retry policy, pacing and public URL.
        await runtime.send_waiting()
        return queued, await runtime.read(
            lambda d: outbox.listing(d, status=None, kind="digest", limit=20)
        )

    queued, sent = run_once(settings, work, rules=rule_set)
    click.echo(f"{queued} digest(s) queued")
    for row in sent:
        click.echo(
            f"  digest {row['id']} to {row['channel']}: {row['status']}"
            + (f" ({row['last_error']})" if row["last_error"] else "")
        )


@main.group()
def notify() -> None:
    """Channels."""


@notify.command("test")
@click.argument("channel")
@click.option("--rules-dir", type=click.Path(path_type=Path), default=None, help=RULES_DIR_HELP)
@click.pass_context
def notify_test(ctx: click.Context, channel: str, rules_dir: Path | None) -> None:
    """Send a test message to CHANNEL and report the provider's answer."""
    from ..notify.registry import kind_of, transport_for

    rule_set = _load(ctx, rules_dir)
    config = rule_set.channels.get(channel)
    if config is None:
        why = rule_set.unconfigured.get(channel, "not defined in the rules directory")
        raise click.ClickException(f"channel {channel!r} is not configured: {why}")
    now = iso(SystemClock().now())
    message = Message(
        title=f"[TEST] pulsehook test message ({now})",
        text=f"pulsehook can reach channel {channel}.",
        markdown=f":white_check_mark: pulsehook can reach channel *{channel}*.",
        html=f"<p>pulsehook can reach channel <b>{channel}</b>.</p>",
        severity="info",
        state="test",
        dedup_key=f"test|{channel}|{now}",
    )
    kind = kind_of(config.kind)
    if kind is not None and kind.incident:
        _incident_test(channel, config, message)
        return
    result = transport_for(config.kind)(config, message)
    click.echo(f"{channel} ({config.kind}): {_answer(result)}" + _said("answer", result))
    if not result.ok:
        sys.exit(1)


def _answer(result: SendResult) -> str:
    return (
        ("ok" if result.ok else "FAILED")
        + (f", HTTP {result.status}" if result.status else "")
        + (f": {result.error}" if result.error else "")
    )


def _said(label: str, result: SendResult | None) -> str:
    return f"\n  {label}: {result.response}" if result and result.response else ""


def _incident_test(channel: str, config: ChannelConfig, message: Message) -> None:
    """On a channel that opens incidents (PagerDuty), a trigger and then its resolve
    with the same dedup key: a test must not leave an incident open on call."""
    from ..notify.registry import transport_for

    send = transport_for(config.kind)

    def answer(result: SendResult) -> str:  # the error names the HTTP status already
        return "ok" if result.ok else f"FAILED: {result.error or 'no detail'}"

    trigger = send(config, message)
    resolve = send(config, dataclasses.replace(message, state="resolved")) if trigger.ok else None
    line = f"{channel} ({config.kind}): trigger {answer(trigger)}"
    if resolve is not None:
        line += f", resolve {answer(resolve)}"
        if resolve.ok:
            line += " — nothing left open"
        else:
            line += f" — the incident may be open: dedup key {message.dedup_key}"
    click.echo(line + _said("trigger answer", trigger) + _said("resolve answer", resolve))
    if not (trigger.ok and resolve is not None and resolve.ok):
        sys.exit(1)
