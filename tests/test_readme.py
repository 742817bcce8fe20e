"""The README's promises, checked: its commands exist and its Python example runs."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from pulsehook.ingest import process_chunk
from pulsehook.store.db import open_database, transaction, wrap
from pulsehook.store.deliveries import Delivery, insert_batch

from .conftest import free_port, payload

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def block_after(heading: str, language: str) -> str:
    section = README[README.index(heading) :]
    match = re.search(rf"```{language}\n(.*?)```", section, re.DOTALL)
    assert match, f"no {language} block after {heading!r}"
    return match.group(1)


def test_first_two_commands_are_the_scripts() -> None:
    first = block_after("# pulsehook", "sh").strip().splitlines()
    assert first[0].startswith("./scripts/serve")
    assert first[1].startswith("./scripts/test")
    for script in ("serve", "test", "bootstrap"):
        assert os.access(ROOT / "scripts" / script, os.X_OK)
    assert "./scripts/test" in (ROOT / ".ci" / "run").read_text()


def test_python_api_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The example reads data/pulsehook.db: make one from GitHub's example payloads.
    db = wrap(open_database(tmp_path / "data" / "pulsehook.db"))
    alert = payload("dependabot_alert.created")
    alert["repository"] = payload("workflow_run.completed")["repository"]
    items = [
        Delivery(
            guid=f"g{i}",
            event=e,
            payload=json.dumps(p),
            content_type="application/json",
            received_at="2026-01-01T00:00:00Z",
        )
        for i, (e, p) in enumerate(
            [("workflow_run", payload("workflow_run.completed")), ("dependabot_alert", alert)]
        )
    ]
    transaction(db, lambda d: insert_batch(d, items))
    transaction(
        db,
        lambda d: process_chunk(d, after_id=0, now="2026-01-01T00:00:00Z", statuses=("pending",)),
    )
    db.conn.close()
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block_after("### Python API", "python"), "README.md", "exec"), {})  # noqa: S102
    text = out.getvalue()
    assert "all 1 builds passed" in text or "build passed" in text
    assert "octo-org/octo-repo" in text and "success" in text
    assert "medium" in text  # the example alert's severity


def test_documented_settings_exist() -> None:
    from pulsehook.settings import Settings

    documented = set(re.findall(r"`PULSEHOOK_([A-Z_]+)`", README))
    fields = {name.upper() for name in Settings.model_fields}
    # SMTP, PagerDuty and Slack channels are read by the rules loader, not Settings.
    channel_vars = {v for v in documented if v.startswith(("SMTP_", "PAGERDUTY_", "SLACK_"))}
    # Read by the test suite itself (tests/conftest.py), not by the service.
    test_vars = {"TEST_DATABASE_URL"}
    assert documented - channel_vars - test_vars <= fields, (
        documented - channel_vars - test_vars - fields
    )


def test_every_setting_is_documented() -> None:
    """Each setting the service reads is in the README under a name it answers to."""
    from pydantic import AliasChoices

    from pulsehook.settings import Settings

    documented = set(re.findall(r"`((?:PULSEHOOK_|PULSE_)?[A-Z][A-Z0-9_]+)`", README))
    missing = []
    for name, field in Settings.model_fields.items():
        names = {f"PULSEHOOK_{name.upper()}"}
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {c for c in alias.choices if isinstance(c, str)}
        elif isinstance(alias, str):
            names.add(alias)
        if not names & documented:
            missing.append(sorted(names)[0])
    assert not missing, f"settings the README does not name: {', '.join(missing)}"


def test_try_it_runs_as_pasted(tmp_path: Path) -> None:
    """The "Try it" block, run by bash in a checkout-like directory (this one's .venv,
    scripts, sources and payloads), with no setting in the environment but the port
    (a free one for 8000): what a reader pasting it gets."""
    block = block_after("## Try it", "sh")
    port = free_port()
    work = tmp_path / "checkout"
    work.mkdir()
    for name in ("pyproject.toml", "src", "rules"):
        (work / name).symlink_to(ROOT / name)
    # This .venv's parts, and a stamp of its own saying pulsehook is installed, so the
    # block's set-up finds it ready and never reinstalls into (and rewrites) this one.
    (work / ".venv").mkdir()
    for part in (ROOT / ".venv").iterdir():
        if not part.name.startswith(".pulsehook-installed"):
            (work / ".venv" / part.name).symlink_to(part)
    (work / ".venv" / ".pulsehook-installed").touch()
    shutil.copytree(ROOT / "scripts", work / "scripts")
    (work / "tests").mkdir()
    (work / "tests" / "payloads").symlink_to(ROOT / "tests" / "payloads")
    script = block.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    assert script != block
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSEHOOK_", "DATABASE_"))}
    env["PULSEHOOK_PORT"] = str(port)
    proc = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # the server it starts is in its group, stopped below
    )
    try:
        out, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the block did not finish: {exc.output}") from None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    log = (work / "serve.log").read_text() if (work / "serve.log").exists() else ""
    assert proc.returncode == 0, out + log
    lines = [line for line in out.splitlines() if "HTTP " in line]
    assert len(lines) == 2, out
    accepted, repos = lines
    assert accepted.endswith("HTTP 202") and '"accepted"' in accepted, out
    assert repos.endswith("HTTP 200") and "octo-org/octo-repo" in repos, out
    # The server was stopped by the block's last line, and the secret it generated is
    # on disk as the block read it, mode 0600.
    assert (work / "data" / "webhook_secret").stat().st_mode & 0o777 == 0o600
