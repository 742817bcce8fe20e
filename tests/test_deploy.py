"""The deployment recipes run what CI tests: the image's entry command, the
Procfile's line and the systemd unit's ExecStart all start the installed
``pulsehook serve``, answer ``/healthz`` and stop on SIGTERM.

No image is built here (no container engine runs on these machines). What the
image would do is run from the recipe itself: its exec-form command from the
virtualenv CI installed, with the environment its ENV lines set, as PID 1 of a
PID namespace of its own (as in a container), its VOLUME and COPY paths mapped
to temp directories; and the wheel its build stage makes, from only what
.dockerignore lets through, is installed as its final stage does and served. The
Dockerfile is linted with hadolint and the compose file checked against the
compose specification's schema (both tools come with the test extra); the
systemd unit, Caddyfile and nginx site are checked with systemd-analyze, caddy
and nginx where this machine has them, else those tests are skipped.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import sysconfig
import time
import tomllib
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from pulsehook.github.verify import sign

from .conftest import free_port, payload, wait_for

ROOT = Path(__file__).parent.parent
# The virtualenv CI installed pulsehook into (the one running this test).
VENV_BIN = Path(sys.executable).parent
STOP_SECONDS = 5.0  # SIGTERM to exit, at most
START_SECONDS = 30.0


# --- reading the recipes ------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue  # Docker drops comment lines, also inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        keyword, _, rest = pending.partition(" ")
        out.append((keyword.upper(), rest.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = dockerfile_instructions((ROOT / "Dockerfile").read_text())
    last_from = max(i for i, (k, _) in enumerate(steps) if k == "FROM")
    return steps[last_from:]


def exec_form(arguments: str) -> list[str]:
    """The argv of an exec-form instruction; fails on the shell form."""
    try:
        argv = json.loads(arguments)
    except json.JSONDecodeError:
        raise AssertionError(f"not in exec form: {arguments}") from None
    assert isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)
    return argv


def only(steps: list[tuple[str, str]], keyword: str) -> str:
    found = [rest for k, rest in steps if k == keyword]
    assert len(found) == 1, f"{keyword} {len(found)} times in the final stage"
    return found[0]


def image_entry() -> list[str]:
    """ENTRYPOINT + CMD: the command a container runs."""
    steps = final_stage()
    return exec_form(only(steps, "ENTRYPOINT")) + exec_form(only(steps, "CMD"))


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in final_stage():
        if keyword == "ENV":
            for item in shlex.split(rest):
                name, eq, value = item.partition("=")
                assert eq, f"ENV {item}: use the NAME=value form"
                env[name] = value
    return env


def image_copies() -> dict[str, str]:
    """Destination -> source (relative to the build context) of the final stage's COPYs."""
    copies: dict[str, str] = {}
    for keyword, rest in final_stage():
        if keyword == "COPY":
            args = [a for a in shlex.split(rest) if not a.startswith("--")]
            *sources, dest = args
            assert len(sources) == 1
            copies[dest] = sources[0]
    return copies


def healthcheck() -> tuple[list[str], list[str]]:
    """The HEALTHCHECK's options and its exec-form command."""
    rest = only(final_stage(), "HEALTHCHECK")
    options, marker, command = rest.partition("CMD ")
    assert marker, "HEALTHCHECK without CMD"
    return options.split(), exec_form(command)


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return data


def unit() -> dict[str, list[str]]:
    """The systemd unit's [Service] keys, each with its values in order."""
    keys: dict[str, list[str]] = {}
    section = ""
    for raw in (ROOT / "deploy" / "pulsehook.service").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            keys.setdefault(key, []).append(value)
    return keys


def unit_environment() -> dict[str, str]:
    env: dict[str, str] = {}
    for assignment in unit()["Environment"]:
        for item in shlex.split(assignment):
            name, _, value = item.partition("=")
            env[name] = value
    return env


def procfile_web() -> str:
    lines = [
        line
        for line in (ROOT / "Procfile").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert len(lines) == 1 and lines[0].startswith("web: "), lines
    return lines[0].removeprefix("web: ")


# --- running what they say ----------------------------------------------------------


def base_env(home: Path) -> dict[str, str]:
    """A clean environment with the CI virtualenv first on PATH (as the image's
    /usr/local/bin): nothing of the machine's PULSEHOOK_* settings."""
    return {
        "PATH": f"{VENV_BIN}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
    }


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        found += [int(child), *descendants(int(child))]
    return found


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


@contextmanager
def started(
    argv: list[str], env: dict[str, str], log: Path, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``argv`` running (in ``cwd``, else the log's directory); killed by its PID
    (and every process it started, by theirs) if it is still there at the end."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd or log.parent
        )
    spawned: list[int] = []
    try:
        yield proc
    finally:
        if proc.poll() is None:
            spawned = descendants(proc.pid)
            proc.kill()
        proc.wait(timeout=10)
        for pid in spawned:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def healthz(port: int) -> int | None:
    """The status of GET /healthz, or None while nothing answers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def wait_serving(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        return healthz(port) == 200

    wait_for(up, timeout=START_SECONDS)


def stop(proc: subprocess.Popen[bytes], pid: int, log: Path) -> tuple[int, float]:
    """SIGTERM to ``pid``; ``proc``'s exit code and how long it took."""
    began = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    code = proc.wait(timeout=STOP_SECONDS + 5)
    took = time.monotonic() - began
    assert "Application shutdown complete" in log.read_text(), "no graceful shutdown"
    return code, took


@cache
def pid_namespaces() -> bool:
    """Whether this machine lets us start a process as PID 1 of its own namespace."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    probe = subprocess.run(
        [unshare, "--pid", "--fork", "--kill-child", "sh", "-c", "test $$ -eq 1"],
        capture_output=True,
        timeout=10,
    )
    return probe.returncode == 0


def as_in_container(tmp_path: Path, port: int) -> dict[str, str]:
    """The image's environment with its paths on this machine: the VOLUME a temp
    dir, the COPYed rules a copy of the source; bound to loopback on ``port``."""
    env = image_env()
    steps = final_stage()
    volume = only(steps, "VOLUME")
    assert env["PULSEHOOK_DATA_DIR"] == (exec_form(volume)[0] if volume.startswith("[") else volume)
    env["PULSEHOOK_DATA_DIR"] = str(tmp_path / "volume")
    rules_source = image_copies()[env["PULSEHOOK_RULES_DIR"]]
    shutil.copytree(ROOT / rules_source, tmp_path / "rules")
    env["PULSEHOOK_RULES_DIR"] = str(tmp_path / "rules")
    env["PULSEHOOK_HOST"] = "127.0.0.1"
    env["PULSEHOOK_PORT"] = str(port)
    return {**base_env(tmp_path), **env}


def installed(argv0: str) -> str:
    """``argv0`` as the virtualenv CI tested has it."""
    path = VENV_BIN / Path(argv0).name
    assert path.is_file() and os.access(path, os.X_OK), f"{path} missing: pip install -e .[test]"
    return str(path)


# --- the Dockerfile ----------------------------------------------------------------


def test_dockerfile_passes_hadolint(tmp_path: Path) -> None:
    hadolint = installed("hadolint")
    # Every rule, even style ones; no configuration file of the machine.
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**base_env(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)},
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_is_slim_multi_stage_non_root_with_data_in_a_volume() -> None:
    steps = dockerfile_instructions((ROOT / "Dockerfile").read_text())
    bases = [rest.split()[0] for k, rest in steps if k == "FROM"]
    assert len(bases) >= 2 and all(re.fullmatch(r"python:3\.1[12]-slim(-\w+)?", b) for b in bases)
    build_stage = steps[: max(i for i, (k, _) in enumerate(steps) if k == "FROM")]
    assert any(k == "RUN" and "pip wheel" in rest for k, rest in build_stage)
    final = final_stage()
    assert any(k == "RUN" and "/wheels/pulsehook-" in rest for k, rest in final)
    uid, _, gid = only(final, "USER").partition(":")
    assert uid not in ("root", "0") and gid not in ("root", "0")
    # The user the image creates is the one it runs as, and owns the volume.
    (create,) = [rest for k, rest in final if k == "RUN" and "useradd" in rest]
    assert f"--uid {uid}" in create and f"--gid {gid}" in create
    assert "chown pulsehook:pulsehook /data" in create
    env = image_env()
    assert env["PULSEHOOK_DATA_DIR"] == only(final, "VOLUME") == "/data"
    assert env["PULSEHOOK_HOST"] == "0.0.0.0"
    assert only(final, "EXPOSE") == env["PULSEHOOK_PORT"] == "8000"


def test_image_entry_command_is_the_installed_console_script() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    entry = image_entry()
    assert entry == ["pulsehook", "serve"]
    assert scripts[entry[0]] == "pulsehook.cli:main"
    installed(entry[0])


def test_image_entry_command_serves_healthchecks_and_stops_on_sigterm(tmp_path: Path) -> None:
    """The container's command, as PID 1 with the image's environment: it serves,
    the HEALTHCHECK passes, docker stop's SIGTERM ends it with 0 within seconds,
    and the HEALTHCHECK then fails."""
    if not pid_namespaces():
        pytest.skip("no PID namespace here (unshare): cannot run the command as PID 1")
    port = free_port()
    env = as_in_container(tmp_path, port)
    entry = image_entry()
    argv = ["unshare", "--pid", "--fork", "--kill-child", installed(entry[0]), *entry[1:]]
    options, check = healthcheck()
    assert any(o.startswith("--timeout=") for o in options)
    log = tmp_path / "log"
    with started(argv, env, log) as proc:
        wait_serving(proc, port, log)
        (pid1,) = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert cmdline(int(pid1))[-1] == "serve"
        probe = subprocess.run(check, env=env, capture_output=True, timeout=10)
        assert probe.returncode == 0, probe.stderr
        code, took = stop(proc, int(pid1), log)
    assert code == 0 and took < STOP_SECONDS
    volume = Path(env["PULSEHOOK_DATA_DIR"])
    assert (volume / "pulsehook.db").exists()
    for name in ("webhook_secret", "api_token"):
        assert (volume / name).stat().st_mode & 0o777 == 0o600
    down = subprocess.run(check, env=env, capture_output=True, timeout=10)
    assert down.returncode != 0


@cache
def dockerignore() -> tuple[tuple[bool, str, re.Pattern[str]], ...]:
    """(negated, pattern text, pattern) for each line of .dockerignore, in order."""
    rules = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            text = line.removeprefix("!").strip("/")
            rules.append((line.startswith("!"), text, docker_pattern(text)))
    return tuple(rules)


def ignored(path: str) -> bool:
    """Whether Docker leaves ``path`` (relative, /-separated) out of the build context:
    a pattern matches a path or any of its parents; the last that matches decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for negated, _, pattern in dockerignore():
        if any(pattern.fullmatch(p) for p in prefixes):
            excluded = not negated
    return excluded


def build_context(target: Path) -> None:
    """Copy what ``docker build .`` would send (symlinks as symlinks) into ``target``."""

    def may_reinclude(directory: str) -> bool:
        return any(
            negated and (text.startswith(directory + "/") or text.startswith("*"))
            for negated, text, _ in dockerignore()
        )

    for here, dirs, files in os.walk(ROOT):
        base = Path(here).relative_to(ROOT)
        for name in list(dirs):
            relative = (base / name).as_posix()
            if (Path(here) / name).is_symlink():
                dirs.remove(name)
                files.append(name)
            elif ignored(relative) and not may_reinclude(relative):
                dirs.remove(name)
        for name in files:
            relative = (base / name).as_posix()
            if ignored(relative):
                continue
            source, copy = Path(here) / name, target / relative
            copy.parent.mkdir(parents=True, exist_ok=True)
            if source.is_symlink():
                copy.symlink_to(os.readlink(source))
            else:
                shutil.copy2(source, copy)


def test_dockerignore_keeps_secrets_out_and_what_is_copied_in() -> None:
    for secret in (
        "data/webhook_secret",
        "data/api_token",
        "data/pulsehook.db",
        "pulsehook.env",
        ".venv/bin/python",
        ".git/config",
        "src/pulsehook/__pycache__/app.cpython-311.pyc",
        "src/pulsehook.egg-info/PKG-INFO",
    ):
        assert ignored(secret), secret
    # What the wheel build reads (pyproject's own files, the package and the
    # rules its shipped rules link to) and what the final stage copies.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = ["pyproject.toml", project["readme"], *project.get("license-files", []), "src"]
    steps = dockerfile_instructions((ROOT / "Dockerfile").read_text())
    for k, rest in steps:
        if k == "COPY" and "--from" not in rest:
            args = [a for a in shlex.split(rest) if not a.startswith("--")]
            needed += [s for s in args[:-1] if s != "."]
    assert "rules" in needed
    for source in needed:
        files = [ROOT / source] if (ROOT / source).is_file() else (ROOT / source).rglob("*")
        for file in files:
            relative = file.relative_to(ROOT).as_posix()
            if file.is_file() and "__pycache__" not in relative and ".egg-info" not in relative:
                assert not ignored(relative), relative
    shipped = ROOT / "src" / "pulsehook" / "rules" / "shipped"
    if shipped.is_symlink():  # the build context must hold what it points at
        target = shipped.resolve().relative_to(ROOT).as_posix()
        assert not ignored(f"{target}/alerts.py"), target


def test_build_context_makes_the_wheel_the_image_runs(tmp_path: Path) -> None:
    """The build stage's wheel, from only what .dockerignore lets through, installed
    as the final stage installs it (no index): its console script is the entry
    command, and with the image's environment it serves. The dependencies are the
    ones CI installed (the image would fetch the same from the index)."""
    context = tmp_path / "context"
    build_context(context)
    steps = dockerfile_instructions((ROOT / "Dockerfile").read_text())
    build_stage = steps[: max(i for i, (k, _) in enumerate(steps) if k == "FROM")]
    (build,) = [shlex.split(rest) for k, rest in build_stage if k == "RUN"]
    assert build[:2] == ["pip", "wheel"] and build[-1] == "."
    wheels = tmp_path / "wheels"
    made = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels), "."],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert made.returncode == 0, made.stderr[-3000:]
    (wheel,) = wheels.glob("pulsehook-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {"pulsehook/py.typed", "pulsehook/web/templates/base.html"} <= names
    if (ROOT / "src" / "pulsehook" / "rules" / "shipped").exists():
        assert "pulsehook/rules/shipped/alerts.py" in names
    image = tmp_path / "image"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(image)], check=True)
    (site,) = image.glob("lib/python3*/site-packages")
    (site / "ci-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(image / "bin" / "python")]
    installed_wheel = subprocess.run(
        [*pip, "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert installed_wheel.returncode == 0, installed_wheel.stderr[-3000:]
    entry = image_entry()
    port = free_port()
    env = as_in_container(tmp_path / "run", port)
    env["PATH"] = f"{image / 'bin'}{os.pathsep}{env['PATH']}"
    log = tmp_path / "log"
    with started([str(image / "bin" / entry[0]), *entry[1:]], env, log) as proc:
        wait_serving(proc, port, log)
        shown = json.loads(
            subprocess.run(
                [
                    str(image / "bin" / "python"),
                    "-c",
                    "import pulsehook, json; print(json.dumps(pulsehook.__file__))",
                ],
                capture_output=True,
                text=True,
                env=env,
                check=True,
                timeout=30,
            ).stdout
        )
        assert Path(shown).is_relative_to(site), shown  # the wheel's, not the checkout's
        stop(proc, proc.pid, log)


def docker_pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern: Go's filepath.Match per path segment, ``**`` any number."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


# --- compose -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["compose.yaml", "deploy/compose.replicas.yaml"])
def test_compose_file_matches_the_compose_specification(tmp_path: Path, name: str) -> None:
    checker = installed("check-jsonschema")
    result = subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", str(ROOT / name)],
        capture_output=True,
        text=True,
        env=base_env(tmp_path),
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_replicas_example_shares_one_postgresql_and_keeps_secrets_out() -> None:
    data = yaml.safe_load((ROOT / "deploy" / "compose.replicas.yaml").read_text())
    services = data["services"]
    replicas = {n: s for n, s in services.items() if n.startswith("pulsehook-")}
    assert len(replicas) == 3
    urls = {s["environment"]["DATABASE_URL"] for s in replicas.values()}
    assert urls == {"postgresql://pulsehook:${POSTGRES_PASSWORD}@postgres:5432/pulsehook"}
    assert len({tuple(s["volumes"]) for s in replicas.values()}) == 3  # a volume each
    assert services["postgres"]["image"].startswith("postgres:15")
    caddy = (ROOT / "deploy" / "Caddyfile.replicas").read_text()
    assert all(f"{name}:8000" in caddy for name in replicas) and "health_uri /readyz" in caddy
    assert services["caddy"]["ports"] == ["127.0.0.1:8000:8000"]
    text = (ROOT / "deploy" / "compose.replicas.yaml").read_text()
    assert "SECRET=" not in text and "TOKEN=" not in text


def test_compose_service_matches_the_image_and_keeps_secrets_out() -> None:
    (service,) = compose()["services"].values()
    _, check = healthcheck()
    assert service["healthcheck"]["test"] == ["CMD", *check]
    assert service["restart"] in ("unless-stopped", "always", "on-failure")
    volumes = [v.split(":") for v in service["volumes"]]
    assert [name for name, target, *_ in volumes if target == "/data"] == ["pulsehook-data"]
    assert "pulsehook-data" in compose()["volumes"]
    ports = [p.rsplit(":", 1) for p in service["ports"]]
    assert ports == [["127.0.0.1:8000", image_env()["PULSEHOOK_PORT"]]]
    # Settings inline, secrets only through the env file (or generated in the volume).
    assert [e["path"] for e in service["env_file"]] == ["pulsehook.env"]
    secretive = re.compile(r"SECRET|TOKEN|PASSWORD|KEY|WEBHOOK_URL")
    assert not [name for name in service.get("environment", {}) if secretive.search(name)]


def test_env_example_names_known_settings_and_holds_no_value() -> None:
    known = (ROOT / "README.md").read_text() + "".join(
        f.read_text() for f in (ROOT / "src").rglob("*.py")
    )
    text = (ROOT / "deploy" / "pulsehook.env.example").read_text()
    named = re.findall(r"^# ?([A-Z][A-Z0-9_]+)=(.*)$", text, re.MULTILINE)
    assert named
    for name, value in named:
        assert name in known, name
        assert value == "", name
    assert all(line == "" or line.startswith("#") for line in text.splitlines())


def test_forwarded_headers_believed_from_loopback_or_as_compose_sets(tmp_path: Path) -> None:
    """X-Forwarded-Proto (hence the dashboard cookie's Secure flag) is taken from a
    proxy on 127.0.0.1 by default, from any other peer only with compose's
    FORWARDED_ALLOW_IPS."""

    def secure_cookie(port: int, token: str, source: str) -> bool:
        transport = httpx.HTTPTransport(local_address=source)
        with httpx.Client(transport=transport, timeout=10) as client:
            rsp = client.get(
                f"http://127.0.0.1:{port}/",
                params={"token": token},
                headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"},
            )
        assert rsp.status_code == 303
        return "secure" in rsp.headers["set-cookie"].lower().split("; ")

    (service,) = compose()["services"].values()
    for extra, expect in (
        ({}, {"127.0.0.1": True, "127.0.0.3": False}),
        (service.get("environment") or {}, {"127.0.0.3": True}),
    ):
        port = free_port()
        run_dir = tmp_path / str(port)
        env = {**as_in_container(run_dir, port), **extra}
        entry = image_entry()
        with started([installed(entry[0]), *entry[1:]], env, run_dir / "log") as proc:
            wait_serving(proc, port, run_dir / "log")
            token = (Path(env["PULSEHOOK_DATA_DIR"]) / "api_token").read_text().strip()
            seen = {source: secure_cookie(port, token, source) for source in expect}
            assert seen == expect, extra
            stop(proc, proc.pid, run_dir / "log")


# --- the Procfile ------------------------------------------------------------------


def test_procfile_execs_the_installed_command_without_building_anything() -> None:
    command = procfile_web()
    assert command.startswith("exec pulsehook serve ")
    assert "$PORT" in command
    for builds in ("scripts/", "venv", "pip ", "bootstrap"):
        assert builds not in command


def test_procfile_line_stops_on_sigterm_and_leaves_no_process(tmp_path: Path) -> None:
    """Run as a Procfile runner does (sh -c, PORT set, in the app's directory):
    the process the platform signals is pulsehook itself, and after SIGTERM
    nothing it started is left."""
    port = free_port()
    env = {
        **base_env(tmp_path),
        "PORT": str(port),
        "PULSEHOOK_DATA_DIR": str(tmp_path / "disk"),
        "PULSEHOOK_HOST": "127.0.0.1",  # the platform's default is every interface
        "PULSEHOOK_RULES_DIR": str(tmp_path / "no-rules"),
    }
    log = tmp_path / "log"
    with started(["/bin/sh", "-c", procfile_web()], env, log, cwd=ROOT) as proc:
        wait_serving(proc, port, log)
        assert Path(cmdline(proc.pid)[1]).name == "pulsehook", cmdline(proc.pid)
        spawned = descendants(proc.pid)
        stop(proc, proc.pid, log)
    assert not [pid for pid in spawned if alive(pid)]
    assert (tmp_path / "disk" / "pulsehook.db").exists()


def test_procfile_refuses_to_start_without_a_data_dir(tmp_path: Path) -> None:
    env = {**base_env(tmp_path), "PORT": str(free_port()), "PULSEHOOK_HOST": "127.0.0.1"}
    result = subprocess.run(
        ["/bin/sh", "-c", procfile_web()],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "PULSEHOOK_DATA_DIR" in result.stderr
    assert not (tmp_path / "data").exists()


# --- systemd -----------------------------------------------------------------------


def test_systemd_unit_runs_the_image_entry_point_hardened() -> None:
    keys = unit()
    (exec_start,) = keys["ExecStart"]
    argv = shlex.split(exec_start)
    entry = image_entry()
    assert Path(argv[0]).name == entry[0] and argv[1:] == entry[1:]
    env = unit_environment()
    assert keys["StateDirectory"] == ["pulsehook"]
    assert env["PULSEHOOK_DATA_DIR"] == "/var/lib/pulsehook"
    assert keys["ReadWritePaths"] == ["/var/lib/pulsehook"]
    assert keys["User"] != ["root"] and keys["Restart"] == ["on-failure"]
    assert keys["NoNewPrivileges"] == ["yes"] and keys["ProtectSystem"] == ["strict"]
    assert keys["EnvironmentFile"] == ["-/etc/pulsehook/pulsehook.env"]


def test_systemd_exec_start_serves_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """ExecStart with the unit's Environment= (its state directory a temp dir):
    it serves on loopback and systemd's stop (SIGTERM) ends it within seconds,
    cleanly by systemd's rules (exit 0, or death by the SIGTERM it was sent)."""
    port = free_port()
    env = {
        **base_env(tmp_path),
        **unit_environment(),
        "PULSEHOOK_DATA_DIR": str(tmp_path / "state"),
        "PULSEHOOK_RULES_DIR": str(tmp_path / "rules"),
        "PULSEHOOK_PORT": str(port),
    }
    assert env["PULSEHOOK_HOST"] == "127.0.0.1"
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    (exec_start,) = unit()["ExecStart"]
    argv = shlex.split(exec_start)
    log = tmp_path / "log"
    with started([installed(argv[0]), *argv[1:]], env, log) as proc:
        wait_serving(proc, port, log)
        code, took = stop(proc, proc.pid, log)
    assert code in (0, -signal.SIGTERM) and took < STOP_SECONDS
    assert (tmp_path / "state" / "webhook_secret").exists()


def test_systemd_unit_verifies_and_is_well_confined(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    (exec_start,) = unit()["ExecStart"]
    binary = shlex.split(exec_start)[0]
    # verify checks that ExecStart exists: point it at the installed one.
    text = (ROOT / "deploy" / "pulsehook.service").read_text()
    copy = tmp_path / "pulsehook.service"
    copy.write_text(text.replace(binary, installed(binary)))
    verify = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0 and not (verify.stdout + verify.stderr).strip(), (
        verify.stdout + verify.stderr
    )
    # Exposure on systemd's 0-10 scale, 10 = unconfined; --threshold is in tenths.
    security = subprocess.run(
        [analyze, "security", "--offline=true", "--threshold=20", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert security.returncode == 0, security.stdout[-2000:] + security.stderr


# --- the reverse proxies -----------------------------------------------------------


def test_caddyfile_is_valid(tmp_path: Path) -> None:
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("caddy is not installed on this machine")
    env = {**base_env(tmp_path), "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    result = subprocess.run(
        [caddy, "adapt", "--config", str(ROOT / "deploy" / "Caddyfile"), "--validate"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    proxy = json.loads(result.stdout)["apps"]["http"]["servers"]["srv0"]["routes"][0]
    assert "hooks.example.com" in json.dumps(proxy) and "127.0.0.1:8000" in json.dumps(proxy)


def test_nginx_config_proxies_github_sized_deliveries_over_tls(tmp_path: Path) -> None:
    """deploy/nginx.conf as written, on loopback ports with a certificate made
    here: a signed 25 MiB delivery passes to pulsehook, plain HTTP is redirected,
    and the dashboard cookie is Secure because pulsehook believes the proxy."""
    nginx, openssl = shutil.which("nginx"), shutil.which("openssl")
    if nginx is None or openssl is None:
        pytest.skip("nginx (or openssl) is not installed on this machine")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    names = "subjectAltName=DNS:hooks.example.com,IP:127.0.0.1"
    make = [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    files = ["-keyout", str(key), "-out", str(cert)]
    subprocess.run(
        [*make, *files, "-subj", "/CN=hooks.example.com", "-addext", names],
        check=True,
        capture_output=True,
        timeout=60,
    )
    app_port, http_port, https_port = free_port(), free_port(), free_port()
    site = (ROOT / "deploy" / "nginx.conf").read_text()
    for old, new in (
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;"),
        ("/etc/letsencrypt/live/hooks.example.com/fullchain.pem", str(cert)),
        ("/etc/letsencrypt/live/hooks.example.com/privkey.pem", str(key)),
        ("http://127.0.0.1:8000", f"http://127.0.0.1:{app_port}"),
    ):
        assert old in site, old
        site = site.replace(old, new)
    site = "\n".join(line for line in site.splitlines() if "[::]" not in line)
    (tmp_path / "site.conf").write_text(site)
    temp = {n: tmp_path / n for n in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir()
    (tmp_path / "nginx.conf").write_text(
        # One process, as the user running the test: its temp dirs are private.
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
        "daemon off;\nmaster_process off;\nevents {}\nhttp {\n  access_log off;\n"
        f"  client_body_temp_path {temp['body']};\n  proxy_temp_path {temp['proxy']};\n"
        f"  fastcgi_temp_path {temp['fastcgi']};\n  uwsgi_temp_path {temp['uwsgi']};\n"
        f"  scgi_temp_path {temp['scgi']};\n  include {tmp_path}/site.conf;\n}}\n"
    )
    conf = ["-p", str(tmp_path), "-e", str(tmp_path / "error.log")]
    conf += ["-c", str(tmp_path / "nginx.conf")]
    check = subprocess.run([nginx, "-t", *conf], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    env = as_in_container(tmp_path / "app", app_port)
    entry = image_entry()
    with (
        started([installed(entry[0]), *entry[1:]], env, tmp_path / "app.log") as app,
        started([nginx, *conf], base_env(tmp_path), tmp_path / "nginx.log") as proxy,
    ):
        wait_serving(app, app_port, tmp_path / "app.log")
        secret = (Path(env["PULSEHOOK_DATA_DIR"]) / "webhook_secret").read_text().strip()
        token = (Path(env["PULSEHOOK_DATA_DIR"]) / "api_token").read_text().strip()
        base = f"https://127.0.0.1:{https_port}"
        with httpx.Client(
            base_url=base, verify=ssl.create_default_context(cafile=cert), timeout=60
        ) as client:
            wait_for(lambda: proxy.poll() is None and reachable(client), timeout=START_SECONDS)
            data = payload("push")
            data["padding"] = "x" * (25 * 1024 * 1024 - len(json.dumps(data)) - 20)
            body = json.dumps(data).encode()
            assert 25 * 1024 * 1024 - 100 < len(body) <= 25 * 1024 * 1024
            headers = {
                "Content-Type": "application/json",
                "X-GitHub-Event": "push",
                "X-GitHub-Delivery": str(uuid.uuid4()),
                "X-Hub-Signature-256": sign(body, secret.encode()),
            }
            rsp = client.post("/webhooks/github", content=body, headers=headers)
            assert rsp.status_code == 202, rsp.text
            signin = client.get("/", params={"token": token})
            assert signin.status_code == 303
            assert "secure" in signin.headers["set-cookie"].lower().split("; ")
        plain = httpx.get(f"http://127.0.0.1:{http_port}/webhooks/github", timeout=10)
        assert plain.status_code == 301
        assert plain.headers["location"].startswith("https://")
        os.kill(proxy.pid, signal.SIGQUIT)  # nginx's graceful stop
        proxy.wait(timeout=10)
        stop(app, app.pid, tmp_path / "app.log")


def reachable(client: httpx.Client) -> bool:
    try:
        return client.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False
