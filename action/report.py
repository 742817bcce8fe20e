"""Report a GitHub Actions job's outcome to pulsehook: the script behind ``action.yml``.

The composite action runs it on the runner's own ``python3`` (3.8 or later, standard
library only). It reads the action's inputs from ``INPUT_*`` variables (``action.yml``
maps each one explicitly) and the runner's default ``GITHUB_*`` variables, and posts one
report to ``<url>/api/v1/report``:

- ``id`` is ``<run_id>-<attempt>-<job>``, so a request sent again (a retry, a re-run
  step) is recognised by pulsehook as a duplicate rather than stored twice;
- connection errors, timeouts, 408, 429 and 5xx are retried with exponential backoff
  (1 s, 2 s, 4 s, … or the answer's ``Retry-After`` in seconds, at most 30 s each);
  other answers are final, and pulsehook's message is printed;
- redirects are not followed (the token would go along with them).

Exit codes: 0 reported (or not, with ``fail-on-error`` false: a ``::warning::``),
1 not reported with ``fail-on-error`` true (an ``::error::``), 2 the inputs are wrong
(always, whatever ``fail-on-error`` says). The token is never printed.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from http import HTTPStatus
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from email.message import Message

STATUSES = ("success", "failure", "cancelled", "skipped", "timed_out", "neutral")
ENDPOINT = "/api/v1/report"
TIMEOUT = 10.0  # seconds for each request
BACKOFF_CAP = 30.0  # seconds: the longest wait between two attempts
MAX_RETRIES = 10  # with the cap, a job waits at most a few minutes for pulsehook
MAX_ANSWER = 64 * 1024  # bytes of an answer read: enough for any message pulsehook sends
SHOWN = 300  # characters of a server's message printed
_COVERAGE = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")


class Config(NamedTuple):
    """The checked inputs."""

    endpoint: str
    token: str
    status: str
    coverage: float | None
    repo: str
    workflow: str
    fail_on_error: bool
    retries: int


class Answer(NamedTuple):
    """What the server answered: its status code, body and ``Retry-After`` header."""

    status: int
    body: bytes
    retry_after: str | None


class Outcome(NamedTuple):
    """How the report ended: ``accepted``, ``duplicate`` or ``failed`` (with why)."""

    result: str
    report: str
    problem: str = ""


class InputError(Exception):
    """The action is configured wrongly: each problem is an ``::error::``, exit code 2."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is answered as the 3xx it is: following it would resend the token."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:  # noqa: ARG002
        return None


def send(request: urllib.request.Request, timeout: float) -> Answer:
    """POST ``request``; an HTTP error status is an answer, a transport failure raises."""
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=timeout) as response:
            return Answer(response.status, response.read(MAX_ANSWER), _header(response.headers))
    except urllib.error.HTTPError as exc:
        with exc:
            try:
                body = exc.read(MAX_ANSWER)
            except (OSError, http.client.HTTPException):
                body = b""
            return Answer(exc.code, body, _header(exc.headers))


def _header(headers: Message | None) -> str | None:
    value = headers.get("Retry-After") if headers is not None else None
    return str(value) if value is not None else None


def one_line(text: str) -> str:
    """``text`` without control characters (no line of it can pose as a command)."""
    return _CONTROL.sub(" ", text).strip()


def command(level: str, message: str) -> None:
    """Print a workflow command (``::error::`` or ``::warning::``) with its data escaped."""
    data = message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    print(f"::{level}::{data}", flush=True)


def _flag(raw: str, problems: list[str]) -> bool:
    value = raw.strip().lower()
    if value in ("", "false"):
        return False
    if value == "true":
        return True
    problems.append(f"fail-on-error must be true or false, not {one_line(raw)[:40]!r}")
    return False


def _endpoint(raw: str, problems: list[str]) -> str:
    url = raw.strip()
    if not url:
        problems.append("url is required: pulsehook's base URL, such as https://pulse.example.com")
        return ""
    try:
        parts = urlsplit(url)
        # .port raises ValueError for a port that is not a number from 0 to 65535.
        valid = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
        valid = valid and parts.port != 0
    except ValueError:
        valid = False
    if not valid:
        problems.append("url must be an http(s) URL, such as https://pulse.example.com")
        return ""
    if _CONTROL.search(url) or any(c.isspace() for c in url):
        problems.append("url must not contain spaces or control characters")
        return ""
    if "@" in parts.netloc:
        problems.append("url must not carry credentials: give the report token as token")
        return ""
    if parts.query or parts.fragment:
        problems.append("url must be pulsehook's base URL, without a query or fragment")
        return ""
    path = parts.path.rstrip("/")
    if path.endswith(ENDPOINT):  # the endpoint itself was given: fine
        path = path[: -len(ENDPOINT)]
    return f"{parts.scheme.lower()}://{parts.netloc}{path}{ENDPOINT}"


def _coverage(raw: str, problems: list[str]) -> float | None:
    text = raw.strip()
    if not text:
        return None
    number = text[:-1].strip() if text.endswith("%") else text
    if not _COVERAGE.fullmatch(number) or not 0 <= float(number) <= 100:
        problems.append(
            f"coverage must be a percentage from 0 to 100, such as 87.5 or 87.5%,"
            f" not {one_line(raw)[:40]!r}"
        )
        return None
    return float(number)


def _retries(raw: str, problems: list[str]) -> int:
    text = raw.strip() or "3"
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_RETRIES:
        problems.append(f"retries must be a whole number from 0 to {MAX_RETRIES}")
        return 0
    return int(text)


def read_inputs(env: Mapping[str, str]) -> Config:
    """The inputs, checked; every problem found at once in an ``InputError``."""
    problems: list[str] = []
    endpoint = _endpoint(env.get("INPUT_URL", ""), problems)
    token = env.get("INPUT_TOKEN", "").strip()
    if not token:
        problems.append("token is required: one of pulsehook's report tokens, from a secret")
    elif _CONTROL.search(token) or " " in token:
        problems.append("token must be one word without spaces or control characters")
    status = env.get("INPUT_STATUS", "").strip().lower()
    if not status:
        problems.append("status is required: pass the job's status (job.status)")
    elif status not in STATUSES:
        problems.append(
            f"status must be one of {', '.join(STATUSES)}, not {one_line(status)[:40]!r}"
        )
    coverage = _coverage(env.get("INPUT_COVERAGE", ""), problems)
    repo = env.get("INPUT_REPO", "").strip() or env.get("GITHUB_REPOSITORY", "").strip()
    owner, _, name = repo.partition("/")
    if not owner or not name or "/" in name or _CONTROL.search(repo) or " " in repo:
        problems.append(f"repo must be a repository as owner/name, not {one_line(repo)[:140]!r}")
    workflow = env.get("INPUT_WORKFLOW", "").strip() or env.get("GITHUB_WORKFLOW", "").strip()
    # "fail-on-error" is mapped to INPUT_FAIL_ON_ERROR; the runner's own spelling also works.
    raw_flag = env.get("INPUT_FAIL_ON_ERROR", env.get("INPUT_FAIL-ON-ERROR", ""))
    fail_on_error = _flag(raw_flag, problems)
    retries = _retries(env.get("INPUT_RETRIES", ""), problems)
    if problems:
        raise InputError(problems)
    return Config(endpoint, token, status, coverage, repo, workflow, fail_on_error, retries)


def _number(raw: str | None) -> int | None:
    text = (raw or "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


def build_body(config: Config, env: Mapping[str, str]) -> dict[str, object]:
    """The report: the inputs, and what the runner says about the job and its run."""
    body: dict[str, object] = {"repo": config.repo, "status": config.status}
    job = env.get("GITHUB_JOB", "").strip()
    for key, value in (
        ("workflow", config.workflow),
        ("job", job),
        ("branch", env.get("GITHUB_REF_NAME", "").strip()),
        ("sha", env.get("GITHUB_SHA", "").strip()),
    ):
        if value:
            body[key] = value
    run_id = _number(env.get("GITHUB_RUN_ID"))
    attempt = _number(env.get("GITHUB_RUN_ATTEMPT"))
    if run_id is not None:
        server = env.get("GITHUB_SERVER_URL", "").strip().rstrip("/") or "https://github.com"
        running = env.get("GITHUB_REPOSITORY", "").strip() or config.repo
        body["run_id"] = run_id
        body["attempt"] = attempt or 1
        body["url"] = f"{server}/{running}/actions/runs/{run_id}"
        parts: list[object] = [run_id, attempt or 1, job]
        if config.workflow != env.get("GITHUB_WORKFLOW", "").strip():
            # A workflow named apart (a matrix leg's): a report of its own, not a duplicate.
            parts.append(hashlib.sha1(config.workflow.encode()).hexdigest()[:8])  # noqa: S324 - an id, not a secret
        body["id"] = "-".join(str(p) for p in parts if p)
    if config.coverage is not None:
        body["coverage"] = config.coverage
    return body


def retryable(status: int) -> bool:
    return status in (408, 429) or 500 <= status <= 599


def backoff(retry: int, retry_after: str | None = None) -> float:
    """Seconds before retry number ``retry`` (1, 2, …): ``Retry-After`` or 1, 2, 4, …"""
    if retry_after is not None and _SECONDS.fullmatch(retry_after.strip()):
        return min(float(retry_after.strip()), BACKOFF_CAP)
    return min(2.0 ** (retry - 1), BACKOFF_CAP)


def server_message(body: bytes) -> str:
    """pulsehook's message in an error answer (``{"error": {"code", "message"}}``)."""
    try:
        data = json.loads(body.decode("utf-8"))
    except ValueError:
        data = None
    message = ""
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            code = error.get("code")
            message = f"{code}: {error['message']}" if isinstance(code, str) else error["message"]
        elif isinstance(data.get("message"), str):
            message = data["message"]
        elif isinstance(error, str):
            message = error
    elif data is None:
        text = body.decode("utf-8", "replace").strip()
        message = "" if text.startswith("<") else text  # an HTML error page says nothing
    return one_line(message)[:SHOWN]


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def _answered(answer: Answer) -> str:
    said = server_message(answer.body)
    note = " (redirects are not followed: give the final URL)" if 300 <= answer.status < 400 else ""
    return f"pulsehook answered {_status_line(answer.status)}{note}" + (f": {said}" if said else "")


def _settled(answer: Answer, report: str) -> Outcome:
    """The outcome of a 2xx answer: pulsehook says accepted or duplicate, or it was not it."""
    try:
        data = json.loads(answer.body.decode("utf-8"))
    except ValueError:
        data = None
    if isinstance(data, dict) and data.get("status") in ("accepted", "duplicate"):
        given = data.get("report")
        return Outcome(str(data["status"]), one_line(str(given)) if given else report)
    return Outcome(
        "failed",
        report,
        f"the answer ({_status_line(answer.status)}) is not pulsehook's: check the url",
    )


def _reason(exc: BaseException) -> str:
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    return one_line(str(reason))[:SHOWN] or type(reason).__name__


def deliver(
    config: Config,
    body: dict[str, object],
    sleep: Callable[[float], None],
    send: Callable[[urllib.request.Request, float], Answer],
) -> Outcome:
    """Send the report, retrying what may pass: the last attempt's outcome."""
    data = json.dumps(body).encode("utf-8")
    report = str(body.get("id", ""))
    shown = config.endpoint
    problem = ""
    attempts = config.retries + 1
    for attempt in range(1, attempts + 1):
        # The URL was checked to be http(s) before anything is sent.
        request = urllib.request.Request(  # noqa: S310
            config.endpoint,
            data=data,
            method="POST",
            headers={
                "Authorization": f"Bearer {config.token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": "pulsehook-action/1",
            },
        )
        try:
            answer = send(request, TIMEOUT)
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out
            problem = f"could not reach {shown}: {_reason(exc)}"
            wait = backoff(attempt)
        else:
            if 200 <= answer.status < 300:
                return _settled(answer, report)
            problem = _answered(answer)
            if not retryable(answer.status):
                return Outcome("failed", report, problem)
            wait = backoff(attempt, answer.retry_after)
        if attempt < attempts:
            print(f"pulsehook: {problem}; retry {attempt} of {config.retries} in {wait:g} s")
            sleep(wait)
    tries = f"{attempts} attempts" if attempts > 1 else "1 attempt, no retries"
    return Outcome("failed", report, f"{problem} ({tries})")


def write_outputs(env: Mapping[str, str], outputs: dict[str, str]) -> None:
    path = env.get("GITHUB_OUTPUT", "")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as out:
        for name, value in outputs.items():
            out.write(f"{name}={one_line(value)}\n")


def main(
    env: Mapping[str, str],
    sleep: Callable[[float], None] = time.sleep,
    send: Callable[[urllib.request.Request, float], Answer] = send,
) -> int:
    """Report once; the exit code (0, 1 or 2, as the module's docstring says)."""
    try:
        config = read_inputs(env)
    except InputError as exc:
        for problem in exc.problems:
            command("error", f"pulsehook: {problem}")
        return 2
    body = build_body(config, env)
    outcome = deliver(config, body, sleep, send)
    write_outputs(env, {"report": outcome.report, "result": outcome.result})
    if outcome.result != "failed":
        print(f"pulsehook: report {outcome.report} {outcome.result}", flush=True)
        return 0
    level = "error" if config.fail_on_error else "warning"
    named = f"report {outcome.report}" if outcome.report else "the report"
    command(level, f"pulsehook: {named} was not delivered: {outcome.problem}")
    return 1 if config.fail_on_error else 0


if __name__ == "__main__":
    sys.exit(main(os.environ))
