"""``pulsehook init``: a starter rules directory, from the rules the package ships."""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

import click

from . import _settings, main

# Inside the package so that a wheel or an sdist carries them; in a clone the
# directory links to the repository's rules/, the clone's default rules directory.
SHIPPED = ("rules", "shipped")


def shipped_rules() -> list[Traversable]:
    """The rule files the package ships (README included), by name."""
    directory = resources.files("pulsehook").joinpath(*SHIPPED)
    return sorted(
        (f for f in directory.iterdir() if f.is_file() and not f.name.startswith(("_", "."))),
        key=lambda f: f.name,
    )


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), required=False)
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
@click.pass_context
def init(ctx: click.Context, directory: Path | None, force: bool) -> None:
    """Write the shipped starter rules into DIRECTORY (default: the rules dir).

    Refuses to overwrite a file that exists unless --force; writes nothing then.
    """
    target = directory or _settings(ctx).rules_dir
    files = shipped_rules()
    if not files:
        raise click.ClickException("this installation of pulsehook ships no rules")
    source = resources.files("pulsehook").joinpath(*SHIPPED)
    if isinstance(source, Path) and target.is_dir() and target.samefile(source):
        raise click.ClickException(f"{target} is the shipped rules directory itself")
    existing = [str(target / f.name) for f in files if (target / f.name).exists()]
    if existing and not force:
        raise click.ClickException(
            f"not overwriting {', '.join(existing)}: pass --force to replace them,"
            " or choose another directory"
        )
    target.mkdir(parents=True, exist_ok=True)
    for f in files:
        (target / f.name).write_bytes(f.read_bytes())
    click.echo(f"wrote {', '.join(str(target / f.name) for f in files)}")
    click.echo(
        "next: set the channels the rules name (SLACK_WEBHOOK_URL, ...; see README.md there),"
        f"\n  check them:  pulsehook rules check {target}"
        f"\n  use them:    pulsehook serve --rules-dir {target}  (or PULSEHOOK_RULES_DIR)"
    )
