"""The README's promises, checked: its commands exist and its Python example runs."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from pathlib import Path

import pytest

from pulsehook.ingest import process_chunk
from pulsehook.store.db import open_database, transaction, wrap
from pulsehook.store.deliveries import Delivery, insert_batch

from .conftest import payload

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
    channel_vars = {v for v in documented if v.startswith(("SMTP_", "PAGERDUTY_"))}
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
