"""The ``pulsehook`` command."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from .. import __version__
from ..errors import DatabaseMissing, PulsehookError
from ..logs import Redactor, configure
from ..notify.result import secret_values
from ..rules.model import RuleSet
from ..settings import API_TOKEN_FILE, SECRET_FILE, Settings, ensure_api_token, ensure_secret

HOOK_HELP = """\
Add the webhook on GitHub (Settings -> Webhooks -> Add webhook, for a repository
or an organisation):
  Payload URL:   http(s)://<this host>:{port}/webhooks/github
  Content type:  application/json
  Secret:        the value in {path}
  Events:        "Send me everything", or at least: pushes, workflow runs,
                 workflow jobs, check suites, statuses, Dependabot alerts,
                 pull requests, repositories, issues, issue comments
"""


F = TypeVar("F", bound=Callable[..., Any])
SHOWN_ERROR = 300  # characters of an unexpected error's message shown without --debug


class NoDatabase(click.ClickException):
    """The command needs the service's database and there is none where it looked."""

    exit_code = 2


def _setting_name(field: str) -> str:
    """The environment variable a Settings field is read from."""
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    choices = getattr(alias, "choices", None)
    if choices:
        return str(choices[0])
    return f"PULSEHOOK_{field.upper()}"


def _one_line(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"])
        problems.append(f"{_setting_name(field) if field else 'settings'}: {error['msg']}")
    return "invalid setting " + "; ".join(problems)


def _settings(ctx: click.Context, **flags: Any) -> Settings:
    """Settings from the environment, overridden by the flags actually given."""
    given = {k: v for k, v in flags.items() if v is not None}
    if ctx.obj.get("debug"):
        given["debug"] = True
        given.setdefault("log_level", "debug")
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise click.UsageError(_one_line(exc)) from exc
    except ValueError as exc:
        raise click.UsageError(" ".join(str(exc).split())) from exc


def _existing(ctx: click.Context, data_dir: Path | None, **flags: Any) -> Settings:
    """Settings for a command that reads or changes the store: its database must exist.

    Opening a database that is not there creates an empty one, and a command run
    from the wrong directory would then act on it ("silence 1 added") while the
    service goes on with its own. Exit 2, one line, naming the path it looked at.
    """
    return _require_database(_settings(ctx, data_dir=data_dir, **flags))


def _require_database(settings: Settings) -> Settings:
    """``settings``, or NoDatabase (exit 2) when its data dir holds no database.

    A PostgreSQL store is a server's: it is there once it answers.
    """
    if settings.postgres_url is None and not settings.db_path.is_file():
        raise NoDatabase(
            f"no pulsehook database at {settings.db_path.absolute()}"
            " (start the service once, or pass --data-dir)"
        )
    return settings


def data_dir_option(fn: F) -> F:
    """``--data-dir``, the same on every command."""
    option = click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="The service's data directory, where pulsehook.db is"
        " [PULSEHOOK_DATA_DIR, else ./data].",
    )
    return option(fn)


def _logging(settings: Settings) -> Redactor:
    """Logging for a command; the secrets the settings know are masked from here on."""
    redactor = configure(settings.log_level, access_log=settings.debug, fmt=settings.log_format)
    ctx = click.get_current_context(silent=True)
    if ctx is not None and isinstance(ctx.obj, dict):
        ctx.obj["redactor"] = redactor  # errors shown without --debug are masked too
    tokens = [settings.api_token, settings.github_token, settings.heartbeat_tokens]
    try:
        heartbeat = settings.heartbeat_token_list()
    except PulsehookError as exc:
        raise click.ClickException(str(exc)) from exc
    redactor.add(s.decode() for s in settings.secrets() + heartbeat)
    redactor.add(t.get_secret_value() for t in tokens if t is not None)
    return redactor


def _rules(settings: Settings, redactor: Redactor) -> RuleSet:
    """The rule set; its channels' credentials join the masked secrets."""
    from ..runtime import load_rule_set

    rules = load_rule_set(settings)
    redactor.add(v for c in rules.channels.values() for v in secret_values(c))
    return rules


class Pulsehook(click.Group):
    """The command group: an error no command turned into a message is one line.

    Tracebacks are for ``pulsehook --debug``; without it, a PulsehookError is
    its message and anything else its type and message, exit 1.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            obj = ctx.obj if isinstance(ctx.obj, dict) else {}
            if obj.get("debug"):
                raise
            text = " ".join(str(exc).split())
            if not isinstance(exc, PulsehookError):
                text = f"unexpected {type(exc).__name__}: {text[:SHOWN_ERROR]}"
                text += " (pulsehook --debug ... shows the traceback)"
            redactor = obj.get("redactor")
            if isinstance(redactor, Redactor):
                text = redactor.redact(text)
            if isinstance(exc, DatabaseMissing):
                raise NoDatabase(text) from exc
            raise click.ClickException(text) from exc


@click.group(cls=Pulsehook)
@click.version_option(__version__, prog_name="pulsehook")
@click.option("--debug", is_flag=True, help="Verbose logs (each GitHub request) and tracebacks.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """pulsehook keeps the pulse of a GitHub ecosystem."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _serve(ctx: click.Context, **flags: Any) -> None:
    import uvicorn

    from ..app import create_app
    from ..web import server as http_server

    settings = _settings(ctx, **flags)
    redactor = _logging(settings)
    try:
        settings, generated = ensure_secret(settings)
        settings, new_token = ensure_api_token(settings)
        redactor.add(s.decode() for s in settings.secrets())
        redactor.add([settings.api_token.get_secret_value() if settings.api_token else None])
        app = create_app(settings, rules=_rules(settings, redactor))
    except PulsehookError as exc:
        raise click.ClickException(str(exc)) from exc
    secret_path = settings.data_dir / SECRET_FILE
    if generated:
        click.echo(
            f"Generated a webhook secret and stored it in {secret_path}:\n\n  {generated}\n",
            err=True,
        )
    if settings.secrets() and secret_path.exists():
        click.echo(HOOK_HELP.format(port=settings.port, path=secret_path), err=True)
    elif settings.insecure and not settings.secrets():
        click.echo("WARNING: running without a webhook secret; any sender is accepted.", err=True)
    if new_token:
        click.echo(
            f"Generated an API token and stored it in {settings.data_dir / API_TOKEN_FILE}:\n\n"
            f"  {new_token}\n\nSend it as 'Authorization: Bearer <token>'; open the dashboard"
            f" once as http://{settings.host}:{settings.port}/?token=<token>.\n",
            err=True,
        )
    if settings.open_reads and not _loopback(settings.host):
        click.echo(
            f"WARNING: PULSEHOOK_OPEN_READS is on and {settings.host} is not a loopback"
            " address: anyone who reaches it can read the API and the dashboard.",
            err=True,
        )
    open_files = http_server.raise_open_file_limit()
    if (low := http_server.low_limit_warning(open_files)) is not None:
        click.echo(low, err=True)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # logging is configured above: one format, secrets masked
        log_level=None,
        proxy_headers=True,
        access_log=settings.debug,
        **http_server.uvicorn_options(
            open_files=open_files,
            max_header_bytes=http_server.MAX_HEADER_BYTES,
            header_timeout=http_server.HEADER_TIMEOUT_SECONDS,
            body_idle_timeout=http_server.BODY_IDLE_TIMEOUT_SECONDS,
        ),
    )


def _default(name: str) -> Any:
    """A setting's default, as the help shows it: the help can never say another."""
    return Settings.model_fields[name].default


def server_options(port: int | None = None) -> Callable[[F], F]:
    """The options of a command that serves; ``port``: its own default port, where it
    is not the setting's."""
    shown_port = port if port is not None else _default("port")

    def decorate(fn: F) -> F:
        for option in reversed(
            [
                click.option(
                    "--host",
                    default=None,
                    help=f"Interface to bind [PULSEHOOK_HOST, else {_default('host')}].",
                ),
                click.option(
                    "--port",
                    type=click.IntRange(1, 65535),
                    default=None,
                    help=f"Port [PULSEHOOK_PORT, else {shown_port}].",
                ),
                click.option(
                    "--data-dir",
                    type=click.Path(file_okay=False, path_type=Path),
                    default=None,
                    help="Where the SQLite file and the generated secret live (created if"
                    f" missing) [PULSEHOOK_DATA_DIR, else {_default('data_dir')}].",
                ),
                click.option(
                    "--rules-dir",
                    type=click.Path(path_type=Path),
                    default=None,
                    help="Directory of rule files"
                    f" [PULSEHOOK_RULES_DIR, else {_default('rules_dir')}].",
                ),
                click.option(
                    "--log-level",
                    type=click.Choice(["debug", "info", "warning", "error"]),
                    default=None,
                    help=f"[PULSEHOOK_LOG_LEVEL, else {_default('log_level')}]",
                ),
                click.option(
                    "--insecure",
                    is_flag=True,
                    default=None,
                    help="Accept unsigned deliveries (local development only).",
                ),
                click.option(
                    "--no-worker",
                    "worker",
                    flag_value=False,
                    default=None,
                    help="Only receive; processing, alerts and the summary run in"
                    " 'pulsehook worker'.",
                ),
            ]
        ):
            fn = option(fn)
        return fn

    return decorate


@main.command()
@server_options()
@click.pass_context
def serve(ctx: click.Context, /, **flags: Any) -> None:
    """Serve the webhook endpoint and the API, with the worker in-process."""
    _serve(ctx, **flags)


@main.command()
@data_dir_option
@click.pass_context
def replay(ctx: click.Context, data_dir: Path | None) -> None:
    """Rebuild all derived state from the stored deliveries.

    Stop the service first: replay rewrites every derived table.
    """
    from ..runtime import Runtime, run_once

    settings = _existing(ctx, data_dir)
    _logging(settings)

    async def work(runtime: Runtime) -> tuple[int, int, dict[str, int]]:
        return await runtime.replay()

    # No rules: replay rebuilds state, it does not raise the past's alerts again.
    done, total, counts = run_once(settings, work, rules=RuleSet())
    click.echo(
        f"replayed {done} of {total} deliveries: "
        + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    )


# Registers their commands on ``main``.
from . import alerting, backup, copy, heartbeat, init, prune, scan, summary, worker  # noqa: E402

__all__ = [
    "alerting",
    "backup",
    "copy",
    "heartbeat",
    "init",
    "main",
    "prune",
    "scan",
    "summary",
    "worker",
]
