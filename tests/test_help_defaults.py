"""Help texts state the real defaults: every ``[PULSEHOOK_X, else D]`` is the setting's
default, and ``dashboard``, whose port differs, binds the port its help names."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import httpx
import pytest
from click.testing import CliRunner

from pulsehook.cli import main
from pulsehook.settings import Settings

from .conftest import wait_for

STATED = re.compile(r"\[(PULSEHOOK_[A-Z_]+), else ([^\]]+)\]")


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in sorted(group.commands.items()):
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


def _help(args: tuple[str, ...]) -> str:
    result = CliRunner().invoke(main, [*args, "--help"], terminal_width=1000)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_every_stated_default_is_the_settings_default() -> None:
    stated = {args: STATED.findall(_help(args)) for args in _commands(main)}
    assert sum(map(len, stated.values())) >= 10  # the pattern is what the help texts use
    for args, found in stated.items():
        for variable, shown in found:
            name = variable.removeprefix("PULSEHOOK_").lower()
            if name not in Settings.model_fields:
                assert variable == "PULSEHOOK_HEARTBEAT_TOKEN"  # the command's own envvar
                continue
            default = str(Settings.model_fields[name].default)
            if name == "public_url":  # unset: the address serve listens on by default
                fields = Settings.model_fields
                default = f"http://{fields['host'].default}:{fields['port'].default}"
            if args == ("dashboard",) and name == "port":
                assert shown == "8080"  # its own default, checked by binding it below
                continue
            assert shown.removeprefix("./") == default, (args, variable, shown, default)


def test_serve_states_its_own_port() -> None:
    assert "[PULSEHOOK_PORT, else 8000]" in _help(("serve",))
    assert "[PULSEHOOK_PORT, else 8080]" in _help(("dashboard",))


def _taken(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_dashboard_binds_the_port_its_help_names(tmp_path: Path) -> None:
    if _taken(8080):
        pytest.skip("127.0.0.1:8080 is in use on this machine")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSEHOOK_", "DATABASE_"))}
    env |= {"PULSEHOOK_DATA_DIR": str(tmp_path / "data"), "PULSEHOOK_WEBHOOK_SECRET": "s" * 32}
    env |= {"PULSEHOOK_RULES_DIR": str(tmp_path / "rules")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pulsehook", "dashboard", "--host", "127.0.0.1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:

        def up() -> bool:
            assert proc.poll() is None, "pulsehook dashboard exited"
            try:
                return httpx.get("http://127.0.0.1:8080/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=60)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
