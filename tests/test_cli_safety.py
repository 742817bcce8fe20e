"""A CLI that cannot act on the wrong thing: the store must exist, bad values are
one line, a scan that failed says so; and the package ships the starter rules."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from pulsehook import EcosystemMonitor
from pulsehook.cli import main
from pulsehook.cli.init import shipped_rules
from pulsehook.errors import ConfigError, DatabaseMissing, PulsehookError
from pulsehook.store.db import open_database

from . import stores
from .conftest import free_port
from .github_standin import ORG, TOKEN, standin

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rules"
NO_DATABASE = "no pulsehook database at {} (start the service once, or pass --data-dir)"


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def make_store(data: Path) -> Path:
    path = data / "pulsehook.db"
    open_database(path).close()
    return path


def error_lines(result: Result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("Error:")]


# Every command that reads or changes the store, with what it needs besides.
STORE_COMMANDS = [
    ["replay"],
    ["silence", "add", "--rule", "build_*", "--for", "2h"],
    ["silence", "list"],
    ["silence", "delete", "1"],
    ["digest", "send", "--now"],
    ["summary"],
    ["summary", "publish"],
    ["scan", "--org", ORG, "--api-url", "http://127.0.0.1:9"],
    ["backup", "copy.db"],
]


@pytest.mark.sqlite_only("a PostgreSQL store is the server's: there is no file to look for")
@pytest.mark.parametrize("command", STORE_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_store_commands_refuse_a_data_dir_without_database(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    # Run from another directory: the default ./data holds no database.
    result = run(*command)
    assert result.exit_code == 2, result.output
    assert error_lines(result) == [f"Error: {NO_DATABASE.format(elsewhere / 'data/pulsehook.db')}"]
    # A mistyped --data-dir, the same.
    typo = tmp_path / "dta"
    given = run(*command, "--data-dir", str(typo))
    assert given.exit_code == 2, given.output
    assert error_lines(given) == [f"Error: {NO_DATABASE.format(typo / 'pulsehook.db')}"]
    assert "Traceback" not in result.output + given.output
    # Nothing was created on the way: no database, no directory, no copy.
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["elsewhere"]


# Commands that never open the store: rules and channels only, init's DIRECTORY, or
# heartbeat's HTTP request to a running service.
WITHOUT_STORE = {"rules check", "rules test", "notify test", "init", "heartbeat"}


def leaves(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += [(f"{prefix}{name}", command)] if command.invoke_without_command else []
            found += leaves(command, f"{prefix}{name} ")
        else:
            found.append((f"{prefix}{name}", command))
    return found


def test_every_command_that_opens_the_store_takes_data_dir() -> None:
    commands = dict(leaves(main))
    assert set(commands) >= WITHOUT_STORE
    for name, command in commands.items():
        options = {opt for param in command.params for opt in param.opts}
        assert ("--data-dir" in options) == (name not in WITHOUT_STORE), name


@pytest.mark.sqlite_only("a PostgreSQL store is the server's: there is no file to look for")
def test_summary_publish_looks_where_the_group_was_told(tmp_path: Path) -> None:
    typo = tmp_path / "dta"
    result = run("summary", "--data-dir", str(typo), "publish")
    assert result.exit_code == 2
    assert error_lines(result) == [f"Error: {NO_DATABASE.format(typo / 'pulsehook.db')}"]


def test_a_recurring_silence_says_when_it_holds(tmp_path: Path) -> None:
    data = make_store(tmp_path / "data").parent
    result = run(
        "silence",
        "add",
        "--repo",
        "o/*",
        "--cron",
        "0 22 * * *",
        "--for",
        "8h",
        "--data-dir",
        str(data),
    )
    assert result.exit_code == 0, result.output
    assert "silence 1 added: at each '0 22 * * *' for PT8H" in result.output
    missing_length = run("silence", "add", "--repo", "o/*", "--cron", "0 22 * * *")
    assert missing_length.exit_code == 2 and "needs --for" in missing_length.output


def test_silence_acts_on_the_data_dir_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = make_store(tmp_path / "service")
    monkeypatch.chdir(tmp_path)
    added = run(
        "silence", "add", "--rule", "build_*", "--for", "2h", "--data-dir", str(service.parent)
    )
    assert added.exit_code == 0, added.output
    assert "silence 1 added: until " in added.output and str(service) in added.output
    with stores.connect(service) as conn:
        assert conn.execute("SELECT rule FROM silences").fetchall() == [("build_*",)]
    monkeypatch.setenv("PULSEHOOK_DATA_DIR", str(service.parent))
    listed = run("silence", "list")
    assert "rule=build_* repo=*" in listed.output and "[active]" in listed.output
    assert not (tmp_path / "data").exists()


def test_silence_until_reads_a_time_without_offset_in_the_configured_zone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = make_store(tmp_path / "data")
    monkeypatch.setenv("PULSEHOOK_DATA_DIR", str(service.parent))
    monkeypatch.setenv("PULSEHOOK_TIMEZONE", "Asia/Kolkata")
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    result = run("silence", "add", "--repo", "octo/*", "--until", f"{tomorrow}T12:00")
    assert result.exit_code == 0, result.output
    with stores.connect(service) as conn:
        (ends,) = conn.execute("SELECT ends_at FROM silences").fetchone()
    assert ends == f"{tomorrow}T06:30:00Z"  # 12:00 in Kolkata (+05:30)


BAD_VALUES = [
    (["silence", "add", "--rule", "x", "--for", "banana"], "'--for'", "30m, 2h, 1d"),
    (["silence", "add", "--rule", "x", "--for", "0m"], "'--for'", "30m, 2h or 1d"),
    (["silence", "add", "--rule", "x", "--until", "tomorrow"], "'--until'", "ISO-8601"),
    (["silence", "add", "--rule", "x", "--until", "2020-01-01T00:00Z"], "'--until'", "future"),
    (["silence", "add", "--rule", "x", "--cron", "every day", "--for", "1h"], "'--cron'", "0 22"),
    (["silence", "add", "--rule", "x", "--for", "1h", "--until", "2099-01-01"], "not both", ""),
    (["silence", "delete", "one"], "SILENCE_ID", "integer"),
    (["scan", "--repo", "just-a-name"], "'--repo'", "owner/name"),
    (["scan", "--org", ORG, "--api-url", "ftp://github.example"], "'--api-url'", "https://"),
    (["worker", "--poll", "0"], "'--poll'", "x>0"),
    (["serve", "--port", "70000"], "'--port'", "65535"),
]


@pytest.mark.parametrize(("args", "names", "accepted"), BAD_VALUES, ids=lambda v: str(v))
def test_bad_values_are_one_line_usage_errors(
    args: list[str], names: str, accepted: str, tmp_path: Path
) -> None:
    data = make_store(tmp_path / "data").parent
    result = run(*args, "--data-dir", str(data))
    assert result.exit_code == 2, result.output
    (line,) = error_lines(result)
    assert names in line and accepted in line
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)


def test_a_bad_setting_is_one_line_naming_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = make_store(tmp_path / "data").parent
    monkeypatch.setenv("PULSEHOOK_TIMEZONE", "Mars/Olympus")
    result = run("silence", "list", "--data-dir", str(data))
    assert result.exit_code == 2
    (line,) = error_lines(result)
    assert "PULSEHOOK_TIMEZONE" in line and "unknown timezone" in line


@pytest.mark.sqlite_only("the error is a damaged SQLite file")
def test_an_unexpected_error_is_one_line_unless_debug(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "pulsehook.db").write_bytes(b"not a database, but a file by that name" * 100)
    quiet = run("silence", "list", "--data-dir", str(data))
    assert quiet.exit_code == 1
    (line,) = error_lines(quiet)
    assert "DatabaseError" in line and "--debug" in line
    assert "Traceback" not in quiet.output
    loud = run("--debug", "silence", "list", "--data-dir", str(data))
    assert loud.exit_code == 1 and isinstance(loud.exception, sqlite3.DatabaseError)


def test_monitor_refuses_a_missing_database(tmp_path: Path) -> None:
    typo = tmp_path / "data" / "pulsehok.db"
    with pytest.raises(DatabaseMissing, match="no pulsehook database at") as caught:
        EcosystemMonitor(org=ORG, db=typo)
    for kind in (ConfigError, FileNotFoundError, PulsehookError):
        assert isinstance(caught.value, kind)
    assert caught.value.path == typo
    assert not typo.exists() and not typo.parent.exists()
    fresh = EcosystemMonitor(org=ORG, db=typo, create=True)  # a store to scan into
    assert typo.is_file() and fresh.get_build_statuses() == {}
    typo.unlink()
    with pytest.raises(DatabaseMissing):
        fresh.get_build_statuses()  # gone since: not recreated empty
    assert not typo.exists()


@pytest.fixture
def scan_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    make_store(tmp_path / "data")
    monkeypatch.setenv("PULSEHOOK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PULSEHOOK_RULES_DIR", str(tmp_path / "none"))
    return tmp_path


def test_scan_of_a_private_repository_without_token_says_to_set_it(scan_env: Path) -> None:
    with standin() as gh:
        result = run("scan", "--repo", f"{ORG}/private-one", "--api-url", gh.url)
    assert result.exit_code == 1, result.output
    assert "scanned 0 repositories" in result.output
    assert f"error: {ORG}/private-one: HTTP 404" in result.output
    assert "no token was sent" in result.output and "Set GITHUB_TOKEN" in result.output


def test_scan_with_a_refused_token_says_so(scan_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_wrong0123456789")
    with standin() as gh:
        result = run("scan", "--org", ORG, "--api-url", gh.url)
    assert result.exit_code == 1, result.output
    assert "listing repositories: HTTP 401" in result.output
    assert "GitHub refused GITHUB_TOKEN (401)" in result.output
    assert "ghp_wrong0123456789" not in result.output


def test_scan_against_unreachable_github_exits_1(scan_env: Path) -> None:
    result = run("scan", "--org", ORG, "--api-url", f"http://127.0.0.1:{free_port()}")
    assert result.exit_code == 1, result.output
    assert f"error: {ORG}: listing repositories" in result.output
    assert "ConnectError" in result.output


def test_scan_that_worked_exits_0_and_debug_shows_each_request(
    scan_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    with standin() as gh:
        loud = run("--debug", "scan", "--repo", f"{ORG}/api", "--api-url", gh.url)
        quiet = run("scan", "--org", ORG, "--api-url", gh.url)  # the other two
    assert loud.exit_code == 0, loud.output
    assert f"pulsehook.github.api: GET /repos/{ORG}/api -> 200" in loud.output
    assert f"GET /repos/{ORG}/api/actions/runs -> 200" in loud.output
    assert quiet.exit_code == 0, quiet.output
    assert "scanned 2 repositories" in quiet.output and "pulsehook.github.api" not in quiet.output
    assert TOKEN not in quiet.output + loud.output


def test_init_writes_the_shipped_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run("init")
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "rules").iterdir())
    assert (
        written
        == sorted(p.name for p in RULES.iterdir())
        == ["README.md", "alerts.py", "summary.toml"]
    )
    for name in written:
        assert (tmp_path / "rules" / name).read_bytes() == (RULES / name).read_bytes()
    assert "pulsehook rules check rules" in result.output
    checked = run("rules", "check", "rules")
    assert checked.exit_code == 0 and "ok: 6 rule(s)" in checked.output


def test_init_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    target = tmp_path / "my-rules"
    target.mkdir()
    (target / "alerts.py").write_text("ALERT_RULES = []  # mine\n")
    refused = run("init", str(target))
    assert refused.exit_code == 1
    (line,) = error_lines(refused)
    assert str(target / "alerts.py") in line and "--force" in line
    assert (target / "alerts.py").read_text() == "ALERT_RULES = []  # mine\n"
    assert sorted(p.name for p in target.iterdir()) == ["alerts.py"]  # nothing else written
    forced = run("init", str(target), "--force")
    assert forced.exit_code == 0, forced.output
    assert (target / "alerts.py").read_bytes() == (RULES / "alerts.py").read_bytes()


def test_init_will_not_write_onto_the_shipped_rules(tmp_path: Path) -> None:
    before = {p.name: p.read_bytes() for p in RULES.iterdir()}
    result = run("init", str(RULES), "--force")
    assert result.exit_code == 1 and "shipped rules directory itself" in result.output
    assert {p.name: p.read_bytes() for p in RULES.iterdir()} == before


def test_the_package_ships_the_repository_rules() -> None:
    assert {f.name: f.read_bytes() for f in shipped_rules()} == {
        p.name: p.read_bytes() for p in RULES.iterdir()
    }


@pytest.fixture
def build_backend(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The build-system's requirements, installed once and kept in pytest's cache."""
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    key = hashlib.sha256("\n".join(requires).encode()).hexdigest()[:12]
    cache = getattr(pytestconfig, "cache", None)  # None under -p no:cacheprovider
    name = f"build-backend-{key}"
    backend = cache.mkdir(name) if cache is not None else tmp_path_factory.mktemp(name)
    if not (backend / "installed").exists():
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--upgrade", "--target"]
        subprocess.run(
            [*pip, str(backend), *requires], check=True, timeout=300, capture_output=True
        )
        (backend / "installed").touch()
    return backend


def test_sdist_and_wheel_carry_the_starter_rules(tmp_path: Path, build_backend: Path) -> None:
    """Built as a release is: an sdist from the tree, the wheel from the sdist."""
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, tree / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(ROOT / "src", tree / "src", symlinks=True, ignore=ignore)
    shutil.copytree(RULES, tree / "rules")
    env = {**os.environ, "PYTHONPATH": str(build_backend)}

    def build(kind: str, where: Path) -> Path:
        code = f"import sys, setuptools.build_meta as b; print(b.build_{kind}(sys.argv[1]))"
        out = tmp_path / "dist"
        done = subprocess.run(
            [sys.executable, "-c", code, str(out)],
            cwd=where,
            env=env,
            check=True,
            timeout=300,
            capture_output=True,
            text=True,
        )
        return out / done.stdout.strip().splitlines()[-1]

    sdist = build("sdist", tree)
    with tarfile.open(sdist) as archive:
        members = {m.name.partition("/")[2]: m for m in archive.getmembers()}
        for name in ("README.md", "alerts.py", "summary.toml"):
            member = members[f"src/pulsehook/rules/shipped/{name}"]
            assert member.isfile()  # the file itself, not the clone's link
            extracted = archive.extractfile(member)
            assert extracted is not None and extracted.read() == (RULES / name).read_bytes()
        archive.extractall(tmp_path / "unpacked", filter="data")
    (unpacked,) = (tmp_path / "unpacked").iterdir()
    wheel = build("wheel", unpacked)
    installed = tmp_path / "installed"
    with zipfile.ZipFile(wheel) as zipped:
        names = set(zipped.namelist())
        assert {
            f"pulsehook/rules/shipped/{n}" for n in ("README.md", "alerts.py", "summary.toml")
        } <= names
        zipped.extractall(installed)  # noqa: S202 - the wheel this test just built
    # The installed wheel's own `pulsehook init`, not the working tree's.
    wheel_env = {**os.environ, "PYTHONPATH": str(installed)}
    where = subprocess.run(
        [sys.executable, "-c", "import pulsehook; print(pulsehook.__file__)"],
        env=wheel_env,
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(installed)
    starter = tmp_path / "starter"
    init = subprocess.run(
        [sys.executable, "-m", "pulsehook", "init", str(starter)],
        env=wheel_env,
        cwd=tmp_path,
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    )
    assert "wrote" in init.stdout
    assert {p.name: p.read_bytes() for p in starter.iterdir()} == {
        p.name: p.read_bytes() for p in RULES.iterdir()
    }


def test_the_cli_and_the_api_refuse_an_endless_silence_alike(tmp_path: Path) -> None:
    """One check of a silence: both refuse one that would hold for ever, in one wording."""
    data = make_store(tmp_path / "data").parent
    result = run("silence", "add", "--rule", "build_*", "--data-dir", str(data))
    assert result.exit_code == 2
    (line,) = error_lines(result)
    assert "needs an end: --for, --until or --cron; one that never ends is refused" in line
