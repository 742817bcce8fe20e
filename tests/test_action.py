"""The composite action (``action.yml`` and ``action/report.py``), run as the Actions
runner runs it: its step's ``env:`` evaluated from the inputs and the GitHub context,
its ``run:`` script under bash, against pulsehook served on loopback, and against
stand-ins that fail, time out or redirect."""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import itertools
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import yaml
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pulsehook.app import create_app
from pulsehook.settings import Settings

from .builders import workflow_run
from .conftest import API_TOKEN, AUTH, SECRET, deliver, drained, free_port, live, wait_for

ROOT = Path(__file__).parent.parent
ACTION: dict[str, Any] = yaml.safe_load((ROOT / "action.yml").read_text())
SCRIPT = ROOT / "action" / "report.py"
TOKEN = "ci-report-token-0001"
REPO = "octo-org/octo-repo"
SHA = "0123456789abcdef0123456789abcdef01234567"
# The GitHub context of the job that runs the step (the `github.*` the runner knows).
GITHUB = {
    "repository": REPO,
    "workflow": "CI",
    "job": "test",
    "ref_name": "main",
    "sha": SHA,
    "server_url": "https://github.com",
    "run_id": "4242",
    "run_attempt": "1",
}
REPORT_ID = "4242-1-test"
INPUTS = {
    "url",
    "token",
    "status",
    "coverage",
    "workflow",
    "repo",
    "fail-on-error",
    "retries",
}
_EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_REFERENCE = re.compile(r"(inputs|github)\.([A-Za-z_][A-Za-z0-9_-]*)")
_PROXIES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def _load_script() -> ModuleType:
    """action/report.py as a module, for the runs that need a recording sleep."""
    spec = importlib.util.spec_from_file_location("pulsehook_action_report", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


REPORT = _load_script()
main: Callable[..., int] = REPORT.main


# -- the runner ------------------------------------------------------------------------


def evaluate(text: str, inputs: Mapping[str, str], github: Mapping[str, str]) -> str:
    """``text`` with its ``${{ inputs.* }}`` and ``${{ github.* }}`` evaluated."""

    def value(match: re.Match[str]) -> str:
        reference = _REFERENCE.fullmatch(match.group(1))
        assert reference, f"an expression the runner stand-in cannot evaluate: {match[0]}"
        context, name = reference.groups()
        if context == "github":
            return github.get(name, "")
        declared = ACTION["inputs"]
        assert name in declared, f"inputs.{name} is not an input of action.yml"
        if name in inputs:
            return inputs[name]
        return evaluate(str(declared[name].get("default", "")), {}, github)

    return _EXPRESSION.sub(value, text)


def runner_env(
    inputs: Mapping[str, str], github: Mapping[str, str], output: Path
) -> dict[str, str]:
    """The step's environment: the machine's, GitHub's default variables, its env:."""
    [step] = ACTION["runs"]["steps"]
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("GITHUB_", "INPUT_", "RUNNER_")) and name.lower() not in _PROXIES
    }
    env.update({f"GITHUB_{name.upper()}": value for name, value in github.items()})
    env.update(
        GITHUB_ACTIONS="true",
        CI="true",
        GITHUB_OUTPUT=str(output),
        GITHUB_ACTION_PATH=str(ROOT),
    )
    env.update({name: evaluate(str(value), inputs, github) for name, value in step["env"].items()})
    return env


def read_outputs(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines() if path.exists() else []
    return dict(line.split("=", 1) for line in lines)


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]

    def text(self) -> str:
        return self.stdout + self.stderr


_runs = itertools.count()  # each run's own directory and output file


def run_action(
    tmp_path: Path, inputs: Mapping[str, str], github: Mapping[str, str] = GITHUB
) -> Ran:
    """Run the step as the runner does: its script in a file, under bash -e."""
    [step] = ACTION["runs"]["steps"]
    work = tmp_path / f"step-{next(_runs)}"
    work.mkdir()
    output = work / "github_output"
    output.touch()
    script = work / "step.sh"
    script.write_text(step["run"])
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        env=runner_env(inputs, github, output),
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return Ran(done.returncode, done.stdout, done.stderr, read_outputs(output))


# -- pulsehook, and stand-ins for it ---------------------------------------------------


@dataclass
class Pulse:
    url: str
    client: httpx.Client

    def reports(self) -> list[dict[str, Any]]:
        """The stored report deliveries."""
        answer = self.client.get("/api/v1/deliveries", params={"event": "pulsehook.report"})
        rows: list[dict[str, Any]] = answer.json()["deliveries"]
        return rows

    def builds(self) -> list[dict[str, Any]]:
        answer = self.client.get("/api/v1/builds", params={"repo": REPO})
        return [b for b in answer.json()["builds"] if b["source"] == "report"]

    def metrics(self) -> dict[str, Any]:
        body: dict[str, Any] = self.client.get(f"/api/v1/repos/{REPO}").json()["metrics"]
        return body

    def statuses(self) -> dict[str, str]:
        answer = self.client.get("/summary.md.json")
        if answer.status_code != 200:
            return {}
        groups = answer.json()["summary"]["status"]
        return {path: name for name, group in groups.items() for path in group}


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback requests of the in-process runs go straight to the test's servers."""
    for name in _PROXIES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def pulse(tmp_path: Path) -> Iterator[Pulse]:
    """pulsehook on loopback with a report token, knowing octo-org/octo-repo."""
    settings = Settings(
        data_dir=tmp_path / "data",
        rules_dir=tmp_path / "none",
        webhook_secret=SecretStr(SECRET),
        api_token=SecretStr(API_TOKEN),
        heartbeat_tokens=SecretStr(TOKEN),
        summary_debounce_seconds=0.02,
    )
    with (
        live(create_app(settings)) as server,
        httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as client,
    ):
        seed = workflow_run(1, "success", "2020-01-01T10:00:00Z")
        assert deliver(client, "workflow_run", seed).status_code == 202
        wait_for(lambda: drained(client))
        yield Pulse(server.url, client)


@dataclass(frozen=True)
class Say:
    """One answer of a stand-in: a status code, headers, after a delay (seconds)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class StandIn:
    """Answers ``POST /api/v1/report`` from a script, then ``then`` to every request
    after it, or (``then`` None) passes them on to pulsehook at ``target``."""

    script: list[Say]
    then: Say | None
    target: str = ""
    url: str = ""
    asked: list[tuple[str, bytes]] = field(default_factory=list)  # (Authorization, body)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        authorization = request.headers.get("authorization", "")
        with self.lock:
            self.asked.append((authorization, body))
            say = self.script.pop(0) if self.script else self.then
        if say is None:
            async with httpx.AsyncClient(base_url=self.target, timeout=10) as client:
                passed = await client.post(
                    "/api/v1/report",
                    content=body,
                    headers={"Authorization": authorization, "Content-Type": "application/json"},
                )
            return Response(passed.content, passed.status_code, media_type="application/json")
        if say.delay:
            await asyncio.sleep(say.delay)
        if say.status == 202:
            return JSONResponse({"report": "stand-in", "status": "accepted"}, 202, say.headers)
        problem = {"error": {"code": "unavailable", "message": f"stand-in says {say.status}"}}
        return JSONResponse(problem, say.status, say.headers)


@contextmanager
def stand_in(script: list[Say], then: Say | None = None, target: str = "") -> Iterator[StandIn]:
    standin = StandIn(list(script), then, target)
    app = Starlette(routes=[Route("/api/v1/report", standin.handle, methods=["POST"])])
    with live(app) as server:
        standin.url = server.url
        yield standin


def run_in_process(
    tmp_path: Path, inputs: Mapping[str, str], github: Mapping[str, str] = GITHUB
) -> tuple[int, list[float], dict[str, str]]:
    """main() with the step's environment and a sleep that only records: (code, waits,
    outputs)."""
    output = tmp_path / f"output-{next(_runs)}"
    slept: list[float] = []
    code = main(runner_env(inputs, github, output), sleep=slept.append)
    return code, slept, read_outputs(output)


def commands(text: str, level: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(f"::{level}::")]


# -- the action's metadata -------------------------------------------------------------


def test_action_is_composite_with_the_documented_inputs_and_outputs() -> None:
    assert ACTION["name"] == "Report to pulsehook"
    inputs = ACTION["inputs"]
    assert set(inputs) == INPUTS
    assert {name for name, spec in inputs.items() if spec.get("required")} == {
        "url",
        "token",
        "status",
    }
    assert all(spec.get("description") for spec in inputs.values())
    assert inputs["workflow"]["default"] == "${{ github.workflow }}"
    assert inputs["repo"]["default"] == "${{ github.repository }}"
    assert inputs["fail-on-error"]["default"] == "false"
    assert inputs["retries"]["default"] == "3"
    outputs = ACTION["outputs"]
    assert set(outputs) == {"report", "result"}
    for name, spec in outputs.items():
        assert spec["value"] == f"${{{{ steps.report.outputs.{name} }}}}"
    runs = ACTION["runs"]
    assert runs["using"] == "composite"
    [step] = runs["steps"]
    assert step["id"] == "report" and step["shell"] == "bash"
    # No expression in the script: every input reaches it through env: only.
    assert "${{" not in step["run"]
    assert step["run"].strip() == 'python3 "$GITHUB_ACTION_PATH/action/report.py"'
    mapped = {}
    for variable, value in step["env"].items():
        reference = re.fullmatch(r"\$\{\{ inputs\.([a-z-]+) \}\}", value)
        assert reference, (variable, value)
        mapped[reference.group(1)] = variable
    assert mapped == {name: "INPUT_" + name.upper().replace("-", "_") for name in INPUTS}


def test_script_uses_the_standard_library_only() -> None:
    tree = ast.parse(SCRIPT.read_text())
    assert ast.get_docstring(tree)
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imported.add(node.module.split(".")[0])
    assert imported - {"__future__"} <= sys.stdlib_module_names, imported


# -- against pulsehook -----------------------------------------------------------------


def test_a_success_is_accepted_then_a_duplicate(pulse: Pulse, tmp_path: Path) -> None:
    inputs = {"url": pulse.url, "token": TOKEN, "status": "success"}
    first = run_action(tmp_path, inputs)
    assert first.code == 0, first
    assert first.stdout.strip() == f"pulsehook: report {REPORT_ID} accepted"
    assert first.outputs == {"report": REPORT_ID, "result": "accepted"}
    assert TOKEN not in first.text()
    wait_for(lambda: drained(pulse.client))
    [build] = pulse.builds()
    assert {k: build[k] for k in ("workflow", "branch", "status", "event", "run_id")} == {
        "workflow": "CI",
        "branch": "main",
        "status": "success",
        "event": "report",
        "run_id": 4242,
    }
    assert build["attempt"] == 1 and build["head_sha"] == SHA and build["default_branch"]
    assert build["url"] == f"https://github.com/{REPO}/actions/runs/4242"
    [stored] = pulse.reports()
    assert stored["guid"].endswith(f":{REPORT_ID}") and stored["status"] == "processed"
    # The same job reporting again (a re-run step): pulsehook has it already.
    again = run_action(tmp_path, inputs | {"url": f"{pulse.url}/"})
    assert again.code == 0, again
    assert again.stdout.strip() == f"pulsehook: report {REPORT_ID} duplicate"
    assert again.outputs == {"report": REPORT_ID, "result": "duplicate"}
    assert len(pulse.reports()) == 1 and len(pulse.builds()) == 1


def test_coverage_and_a_failure_reach_the_repository(pulse: Pulse, tmp_path: Path) -> None:
    covered = run_action(
        tmp_path, {"url": pulse.url, "token": TOKEN, "status": "success", "coverage": "87.5%"}
    )
    assert covered.code == 0 and covered.outputs["result"] == "accepted", covered
    wait_for(lambda: drained(pulse.client))
    assert pulse.metrics()["coverage"] == 87.5
    # A later run's failing job, under another workflow name, in upper case as typed.
    failed = run_action(
        tmp_path,
        {"url": pulse.url, "token": TOKEN, "status": "Failure", "workflow": "Nightly"},
        GITHUB | {"run_id": "4243", "run_attempt": "2"},
    )
    assert failed.code == 0, failed
    # A workflow named apart from the running one has an id of its own (matrix legs).
    assert failed.outputs == {"report": "4243-2-test-c9e429b1", "result": "accepted"}
    wait_for(lambda: drained(pulse.client))
    nightly = [b for b in pulse.builds() if b["workflow"] == "Nightly"]
    assert [(b["status"], b["run_id"], b["attempt"]) for b in nightly] == [("failure", 4243, 2)]
    assert pulse.metrics()["build_status"] == "failure"
    wait_for(lambda: pulse.statuses().get(f"{REPO}/actions/Nightly") == "ERROR")
    assert pulse.statuses()[f"{REPO}/actions/CI"] == "OK"


def test_a_wrong_token_warns_or_fails_as_asked(pulse: Pulse, tmp_path: Path) -> None:
    wrong = {"url": pulse.url, "token": "not-the-token-9", "status": "success"}
    warned = run_action(tmp_path, wrong)
    assert warned.code == 0, warned
    [warning] = commands(warned.stdout, "warning")
    assert "401 Unauthorized" in warning and "missing or wrong report token" in warning
    assert not commands(warned.stdout, "error") and "retry" not in warned.stdout
    assert warned.outputs == {"report": REPORT_ID, "result": "failed"}
    failed = run_action(tmp_path, wrong | {"fail-on-error": "true"})
    assert failed.code == 1, failed
    [error] = commands(failed.stdout, "error")
    assert "401 Unauthorized" in error and not commands(failed.stdout, "warning")
    assert failed.outputs["result"] == "failed"
    for ran in (warned, failed):
        assert "not-the-token-9" not in ran.text()
    assert pulse.reports() == []


def test_a_wrong_input_always_fails_before_anything_is_sent(pulse: Pulse, tmp_path: Path) -> None:
    for fail_on_error in ("false", "true"):
        weird = {"url": pulse.url, "token": TOKEN, "status": "weird"}
        ran = run_action(tmp_path, weird | {"fail-on-error": fail_on_error})
        assert ran.code == 2, ran
        [error] = commands(ran.stdout, "error")
        assert error.startswith("::error::pulsehook: status must be one of success, failure")
        assert ran.outputs == {} and TOKEN not in ran.text()
    assert pulse.reports() == []


@pytest.mark.parametrize("fail_on_error", ["false", "true"])
def test_each_wrong_input_is_named_in_process(
    pulse: Pulse, tmp_path: Path, capsys: pytest.CaptureFixture[str], fail_on_error: str
) -> None:
    good = {"url": pulse.url, "token": TOKEN, "status": "success", "fail-on-error": fail_on_error}
    for change, says in [
        ({"status": ""}, "status is required"),
        ({"url": ""}, "url is required"),
        ({"url": "ftp://pulse.example.com"}, "url must be an http(s) URL"),
        ({"url": "https://pulse.example.com:99999"}, "url must be an http(s) URL"),
        ({"url": "https://user:pw@pulse.example.com"}, "url must not carry credentials"),
        ({"url": f"{pulse.url}/?x=1"}, "without a query or fragment"),
        ({"token": ""}, "token is required"),
        ({"token": "two\nlines"}, "token must be one word"),
        ({"coverage": "lots"}, "coverage must be a percentage from 0 to 100"),
        ({"coverage": "120%"}, "coverage must be a percentage from 0 to 100"),
        ({"coverage": "nan"}, "coverage must be a percentage from 0 to 100"),
        ({"retries": "many"}, "retries must be a whole number from 0 to 10"),
        ({"retries": "11"}, "retries must be a whole number from 0 to 10"),
        ({"repo": "no-slash"}, "repo must be a repository as owner/name"),
    ]:
        code, slept, outputs = run_in_process(tmp_path, good | change)
        out = capsys.readouterr().out
        assert code == 2 and slept == [] and outputs == {}, (change, out)
        assert [says in line for line in commands(out, "error")] == [True], (change, out)
        assert TOKEN not in out
    code, _, _ = run_in_process(tmp_path, good | {"status": "weird", "fail-on-error": "maybe"})
    assert code == 2 and len(commands(capsys.readouterr().out, "error")) == 2
    assert pulse.reports() == []


# -- retries ---------------------------------------------------------------------------


def test_unavailable_twice_then_accepted_in_process(
    pulse: Pulse, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unavailable = [Say(503, {"Retry-After": "7"}), Say(503)]
    with stand_in(unavailable, target=pulse.url) as standin:
        code, slept, outputs = run_in_process(
            tmp_path, {"url": standin.url, "token": TOKEN, "status": "success"}
        )
    assert code == 0
    assert len(standin.asked) == 3
    assert slept == [7.0, 2.0]  # Retry-After first, then the backoff's second step
    # Each attempt is the same request: the same token, the same body and so id.
    assert len(set(standin.asked)) == 1 and standin.asked[0][0] == f"Bearer {TOKEN}"
    out = capsys.readouterr().out
    assert out.count("retry") == 2 and "503 Service Unavailable" in out
    assert out.strip().endswith(f"pulsehook: report {REPORT_ID} accepted")
    assert outputs == {"report": REPORT_ID, "result": "accepted"}
    wait_for(lambda: drained(pulse.client))
    assert len(pulse.reports()) == 1 and pulse.builds()[0]["status"] == "success"


def test_retries_run_out_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inputs = {"token": TOKEN, "status": "success", "retries": "2"}
    with stand_in([], then=Say(503, {"Retry-After": "120"})) as standin:
        code, slept, outputs = run_in_process(tmp_path, inputs | {"url": standin.url})
        assert code == 0 and len(standin.asked) == 3
        assert slept == [30.0, 30.0]  # Retry-After, capped
        assert outputs == {"report": REPORT_ID, "result": "failed"}
        [warning] = commands(capsys.readouterr().out, "warning")
        assert "503 Service Unavailable" in warning and "(3 attempts)" in warning
        strict = inputs | {"url": standin.url, "fail-on-error": "true"}
        code, slept, outputs = run_in_process(tmp_path, strict)
        assert code == 1 and len(standin.asked) == 6
        [error] = commands(capsys.readouterr().out, "error")
        assert "stand-in says 503" in error


def test_what_is_retried_and_what_is_not_in_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = {"token": TOKEN, "status": "success", "retries": "5"}
    # 429 and 500 are retried; a 404 is final, retries left or not.
    with stand_in([Say(429, {"Retry-After": "1"}), Say(500)], then=Say(404)) as standin:
        code, slept, outputs = run_in_process(tmp_path, inputs | {"url": standin.url})
    assert code == 0 and len(standin.asked) == 3 and slept == [1.0, 2.0]
    assert "404 Not Found" in commands(capsys.readouterr().out, "warning")[0]
    # A redirect is not followed: the token would go along.
    with (
        stand_in([], then=Say(202)) as target,
        stand_in([], then=Say(308, {"Location": f"{target.url}/api/v1/report"})) as moved,
    ):
        code, slept, outputs = run_in_process(tmp_path, inputs | {"url": moved.url})
        assert code == 0 and len(moved.asked) == 1 and target.asked == [] and slept == []
    [warning] = commands(capsys.readouterr().out, "warning")
    assert "308 Permanent Redirect" in warning and "redirects are not followed" in warning
    # Nobody listening: connection errors are retried with the backoff.
    nobody = f"http://127.0.0.1:{free_port()}"
    code, slept, outputs = run_in_process(tmp_path, inputs | {"url": nobody, "retries": "3"})
    assert code == 0 and slept == [1.0, 2.0, 4.0] and outputs["result"] == "failed"
    [warning] = commands(capsys.readouterr().out, "warning")
    assert f"could not reach {nobody}/api/v1/report" in warning and "(4 attempts)" in warning


def test_a_timeout_is_retried_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(REPORT, "TIMEOUT", 0.2)
    with stand_in([Say(202, delay=1.0)], then=Say(202)) as standin:
        code, slept, outputs = run_in_process(
            tmp_path, {"url": standin.url, "token": TOKEN, "status": "success", "retries": "1"}
        )
    assert code == 0 and len(standin.asked) == 2 and slept == [1.0]
    assert "timed out" in capsys.readouterr().out
    assert outputs == {"report": "stand-in", "result": "accepted"}


def test_no_retries_against_an_unavailable_server(tmp_path: Path) -> None:
    with stand_in([], then=Say(503)) as standin:
        ran = run_action(
            tmp_path,
            {"url": standin.url, "token": TOKEN, "status": "cancelled", "retries": "0"},
        )
    assert ran.code == 0, ran
    assert len(standin.asked) == 1
    [warning] = commands(ran.stdout, "warning")
    assert "503 Service Unavailable" in warning and "no retries" in warning
    assert ran.outputs == {"report": REPORT_ID, "result": "failed"}
