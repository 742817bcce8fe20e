"""The generic webhook channel against a real receiver over loopback: a starlette app
on uvicorn that checks the signature as a GitHub webhook receiver does
(``hmac.compare_digest``) and records what it was sent; then the same through the
running service, with its outbox retrying."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from pulsehook.alerts.grouping import Count, Member, Tally, render_group
from pulsehook.alerts.lifecycle import alert_key, subject
from pulsehook.app import create_app
from pulsehook.facts import Build, fact_dict
from pulsehook.notify import webhook
from pulsehook.notify.base import ChannelConfig, Message, SendResult
from pulsehook.notify.registry import kind_of, transport_for
from pulsehook.rules.channels import resolve_channels
from pulsehook.rules.load import load_rules
from pulsehook.rules.messages import render
from pulsehook.rules.model import Rule
from pulsehook.settings import Settings

from .builders import workflow_run
from .conftest import API_TOKEN, AUTH, SECRET, deliver, free_port, live, wait_for

HOOK_SECRET = "hook-s3cret-value-0123456789"
BEARER = "b34rer-t0ken-0123456789"
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
ZERO_TIME = "0001-01-01T00:00:00Z"
STARTED, RESOLVED = "2026-06-01T09:00:00Z", "2026-06-01T09:05:00Z"
# Alertmanager's webhook payload, version 4: these keys and no others.
V4_KEYS = {
    "version",
    "groupKey",
    "truncatedAlerts",
    "status",
    "receiver",
    "groupLabels",
    "commonLabels",
    "commonAnnotations",
    "externalURL",
    "alerts",
}
V4_ALERT_KEYS = {
    "status",
    "labels",
    "annotations",
    "startsAt",
    "endsAt",
    "generatorURL",
    "fingerprint",
}


# --- the receiver --------------------------------------------------------------------


@dataclass
class Hit:
    name: str
    headers: dict[str, str]  # names in lower case
    raw: bytes
    code: int
    verified: bool | None  # None: the receiver checks no signature

    @property
    def body(self) -> Any:
        return json.loads(self.raw)


@dataclass
class SignedReceiver:
    """Records every POST to /hook/{name}; with a secret, refuses (401) any request
    whose ``X-Pulsehook-Signature-256`` is not the HMAC of its body. Answers from a
    per-name script of (status, Retry-After), then 200."""

    secret: str | None
    url: str = ""
    hits: list[Hit] = field(default_factory=list)
    scripts: dict[str, list[tuple[int, str | None]]] = field(default_factory=dict)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, name: str, *answers: tuple[int, str | None]) -> None:
        with self.lock:
            self.scripts[name] = list(answers)

    def to(self, name: str) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.name == name]

    def delivered(self, name: str) -> list[Hit]:
        return [h for h in self.to(name) if h.code < 300]

    def verify(self, raw: bytes, given: str | None) -> bool:
        assert self.secret is not None
        expected = "sha256=" + hmac.new(self.secret.encode(), raw, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected.encode(), (given or "").encode())

    async def handle(self, request: Request) -> Response:
        name = request.path_params["name"]
        raw = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        verified = (
            None
            if self.secret is None
            else self.verify(raw, request.headers.get("X-Pulsehook-Signature-256"))
        )
        with self.lock:
            answers = self.scripts.get(name, [])
            code, retry_after = answers.pop(0) if answers else (200, None)
            if verified is False:
                code, retry_after = 401, None
            self.hits.append(Hit(name, headers, raw, code, verified))
        if name == "slow":  # held until the test lets it go (bounded)
            await asyncio.to_thread(self.release.wait, 10)
        if name == "echo":  # an answer quoting what it was sent, as some receivers do
            said = f"refused {headers.get('authorization')} {self.secret} {raw[:40]!r}"
            return PlainTextResponse(said, status_code=400)
        if code == 401:
            return PlainTextResponse("bad signature", status_code=401)
        extra = {"Retry-After": retry_after} if retry_after is not None else {}
        return PlainTextResponse("ok" if code < 300 else f"error {code}", code, headers=extra)


@contextmanager
def signed_receiver(secret: str | None = HOOK_SECRET) -> Iterator[SignedReceiver]:
    rec = SignedReceiver(secret)
    app = Starlette(routes=[Route("/hook/{name}", rec.handle, methods=["POST"])])
    with live(app) as server:
        rec.url = server.url
        try:
            yield rec
        finally:
            rec.release.set()


@pytest.fixture
def hook() -> Iterator[SignedReceiver]:
    with signed_receiver() as rec:
        yield rec


# --- channels and notices, made as the service makes them ------------------------------


def channel(url: str, **options: Any) -> ChannelConfig:
    """A ``[channels.hook]`` table as a rule file gives it (``${VAR}`` resolved)."""
    spec = {"kind": "webhook", "url": url, **options}
    env = {"HOOK_SECRET": HOOK_SECRET, "BEARER": BEARER}
    channels, unconfigured, problems = resolve_channels(
        {"hook": (Path("rules/hook.toml"), spec)}, env
    )
    assert problems == [] and "hook" not in unconfigured, (problems, unconfigured)
    return channels["hook"]


RULE_FILE = """
[channels.hook]
kind = "webhook"
url = "http://127.0.0.1:9/hook"

[[rule]]
name = "build_failure"
condition = "build.status == 'failure' and build.default_branch"
channels = ["hook"]
severity = "critical"
"""


@pytest.fixture(scope="module")
def rule(tmp_path_factory: pytest.TempPathFactory) -> Rule:
    rules = tmp_path_factory.mktemp("rules")
    (rules / "hook.toml").write_text(RULE_FILE)
    found = load_rules(rules, {}).rule("build_failure")
    assert found is not None
    return found


def build(status: str = "failure", repo: str = "octo/svc") -> dict[str, Any]:
    return fact_dict(
        Build(
            repo=repo,
            repo_id=7,
            workflow="CI",
            branch="main",
            default_branch=True,
            status=status,
            event="push",
            run_id=4242,
            attempt=1,
            url=f"https://github.com/{repo}/actions/runs/4242",
            started_at=None,
            completed_at=None,
            actor="me",
            head_sha="abc",
            source="workflow_run",
            updated_at=None,
        )
    )


def notices(rule: Rule) -> tuple[Message, Message]:
    """A firing notice and its alert's resolved notice."""
    red, green = build(), build("success")
    key = alert_key(rule.name, "octo/svc", subject("build", red))
    firing = render(rule, "firing", red, key=key, started_at=STARTED, notified_at=STARTED)
    resolved = render(
        rule,
        "resolved",
        green,
        key=key,
        started_at=STARTED,
        resolved_at=RESOLVED,
        notified_at=RESOLVED,
    )
    return firing, resolved


def member(n: int, state: str = "firing") -> Member:
    return Member(
        rule="build_failure",
        repo=f"org/svc{n}",
        state=state,
        severity="error" if state == "firing" else "info",
        what="\ufdd0CI\ufdd1 on \ufdd0main\ufdd1: \ufdd0failure\ufdd1",
        url=f"https://github.com/org/svc{n}/actions/runs/{n}",
    )


def rfc3339(text: str) -> datetime:
    assert RFC3339.fullmatch(text), text
    return datetime.fromisoformat(text)


# --- the two formats ----------------------------------------------------------------------


def test_the_kind_is_registered() -> None:
    kind = kind_of("webhook")
    assert kind is webhook.KIND and transport_for("webhook") is webhook.send
    assert kind.required == {"url"} and kind.secrets == {"secret", "headers"}
    assert kind.env == {} and kind.rate == 10.0
    assert "rules directory" in kind.hint


def test_pulsehook_format_says_the_notice_and_is_signed(hook: SignedReceiver, rule: Rule) -> None:
    firing, resolved = notices(rule)
    ch = channel(f"{hook.url}/hook/ph", secret="${HOOK_SECRET}")
    assert webhook.send(ch, firing).ok and webhook.send(ch, resolved).ok
    first, second = hook.delivered("ph")
    for hit, message in ((first, firing), (second, resolved)):
        assert hit.verified is True
        assert hit.headers["content-type"] == "application/json"
        assert hit.headers["user-agent"] == "pulsehook"
        assert hit.headers["x-pulsehook-event"] == message.state
        assert re.fullmatch("[0-9a-f]{32}", hit.headers["x-pulsehook-delivery"])
        body = hit.body
        assert set(body) == {
            "version",
            "state",
            "title",
            "text",
            "severity",
            "url",
            "source",
            "dedup_key",
            "details",
        }
        assert body["version"] == 1 and body["state"] == message.state
        assert body["title"] == message.title and body["text"] == message.text
        assert body["source"] == "octo/svc" and body["url"].endswith("/actions/runs/4242")
        assert body["dedup_key"] == firing.dedup_key  # one alert: one key
        assert body["details"]["rule"] == "build_failure"
        assert body["details"]["repo"] == "octo/svc"
        assert rfc3339(body["details"]["started_at"])
    assert first.body["severity"] == "critical" and second.body["severity"] == "info"
    assert rfc3339(second.body["details"]["resolved_at"]) > rfc3339(STARTED)
    assert "resolved_at" not in first.body["details"]
    assert first.headers["x-pulsehook-delivery"] != second.headers["x-pulsehook-delivery"]


def test_alertmanager_format_is_webhook_version_4(hook: SignedReceiver, rule: Rule) -> None:
    firing, resolved = notices(rule)
    ch = channel(
        f"{hook.url}/hook/am",
        secret="${HOOK_SECRET}",
        format="alertmanager",
        external_url="https://pulse.example.com",
    )
    assert webhook.send(ch, firing).ok and webhook.send(ch, resolved).ok
    first, second = (hit.body for hit in hook.delivered("am"))
    assert all(hit.verified for hit in hook.delivered("am"))
    for body, status in ((first, "firing"), (second, "resolved")):
        assert set(body) == V4_KEYS
        assert body["version"] == "4" and body["truncatedAlerts"] == 0
        assert body["status"] == status and body["receiver"] == "hook"
        assert body["externalURL"] == "https://pulse.example.com"
        assert body["groupLabels"] == {"alertname": "build_failure"}
        assert body["groupKey"] == '{}:{alertname="build_failure"}'
        (alert,) = body["alerts"]
        assert set(alert) == V4_ALERT_KEYS and alert["status"] == status
        assert alert["labels"] == {
            "alertname": "build_failure",
            "severity": "critical",  # the rule's, resolved too: the same label set
            "repo": "octo/svc",
            "fact": "build",
        }
        assert body["commonLabels"] == alert["labels"]
        assert body["commonAnnotations"] == alert["annotations"]
        assert alert["generatorURL"] == "https://github.com/octo/svc/actions/runs/4242"
        assert re.fullmatch("[0-9a-f]{16}", alert["fingerprint"])
        assert rfc3339(alert["startsAt"]) == rfc3339(STARTED)
    (red,), (green,) = first["alerts"], second["alerts"]
    assert red["annotations"] == {"summary": firing.title, "description": firing.text}
    assert green["annotations"]["summary"] == resolved.title
    assert red["endsAt"] == ZERO_TIME
    assert rfc3339(green["endsAt"]) == rfc3339(RESOLVED)
    assert red["fingerprint"] == green["fingerprint"]  # one alert, firing then resolved


def test_a_grouped_notice_is_one_alert_per_repository(hook: SignedReceiver) -> None:
    members = (member(1), member(2), member(3), member(4, "resolved"))
    tally = Tally(
        members,
        {("build_failure", "firing"): Count(3, 3), ("build_failure", "resolved"): Count(1, 1)},
    )
    grouped = render_group(tally, kind="webhook", key="build_failure|workflow=CI")
    ch = channel(f"{hook.url}/hook/group", secret="${HOOK_SECRET}", format="alertmanager")
    assert webhook.send(ch, grouped).ok
    (hit,) = hook.delivered("group")
    body = hit.body
    assert set(body) == V4_KEYS and body["status"] == "firing"
    assert body["groupLabels"] == {"alertname": "build_failure", "workflow": "CI"}
    assert body["groupKey"] == '{}:{alertname="build_failure", workflow="CI"}'
    states = {a["labels"]["repo"]: a["status"] for a in body["alerts"]}
    assert states == {
        "org/svc1": "firing",
        "org/svc2": "firing",
        "org/svc3": "firing",
        "org/svc4": "resolved",
    }
    assert all(set(a) == V4_ALERT_KEYS for a in body["alerts"])
    assert len({a["fingerprint"] for a in body["alerts"]}) == 4
    assert body["commonLabels"]["alertname"] == "build_failure"
    assert body["commonLabels"]["workflow"] == "CI" and "repo" not in body["commonLabels"]
    for alert in body["alerts"]:
        rfc3339(alert["startsAt"])
        ends = alert["endsAt"]
        assert ends == ZERO_TIME if alert["status"] == "firing" else rfc3339(ends)
    # The same repository's resolution later keeps its fingerprint.
    later = render_group(
        Tally((member(2, "resolved"),)), kind="webhook", key="build_failure|workflow=CI"
    )
    assert webhook.send(ch, later).ok
    (again,) = hook.delivered("group")[1].body["alerts"]
    first = next(a for a in body["alerts"] if a["labels"]["repo"] == "org/svc2")
    assert again["fingerprint"] == first["fingerprint"] and again["status"] == "resolved"


def test_a_notice_of_several_rules_or_none_is_one_alert(hook: SignedReceiver) -> None:
    other = Member("coverage_drop", "org/a", "firing", "warning", "\ufdd0-7%\ufdd1")
    mixed = render_group(Tally((member(1), other)), kind="webhook", key="k")
    digest = Message(
        title="[pulsehook digest] 3 alert notice(s) in 1 repository",
        text="...",
        markdown="...",
        severity="info",
        state="digest",
        dedup_key="digest|hook|2026-06-01T08:00:00Z",
        details={"entries": 3},
    )
    ch = channel(f"{hook.url}/hook/one", secret="${HOOK_SECRET}", format="alertmanager")
    assert webhook.send(ch, mixed).ok and webhook.send(ch, digest).ok
    first, second = (hit.body for hit in hook.delivered("one"))
    (alert,) = first["alerts"]
    assert alert["labels"]["alertname"] == "build_failure,coverage_drop"
    assert alert["annotations"]["summary"] == mixed.title
    (alert,) = second["alerts"]
    assert alert["labels"] == {"alertname": "pulsehook_digest", "severity": "info"}
    assert second["status"] == "firing" and set(second) == V4_KEYS


def test_the_delivery_id_is_the_same_for_every_attempt_of_a_notice(
    hook: SignedReceiver, rule: Rule
) -> None:
    firing, _ = notices(rule)
    ch = channel(f"{hook.url}/hook/again", secret="${HOOK_SECRET}", format="alertmanager")
    hook.script("again", (500, None))
    assert not webhook.send(ch, firing).ok
    assert webhook.send(ch, firing).ok
    ids = {hit.headers["x-pulsehook-delivery"] for hit in hook.to("again")}
    assert len(ids) == 1 and len(hook.to("again")) == 2
    # Another notice of the same alert (a reminder later on) has an id of its own.
    red = build()
    key = firing.dedup_key
    repeat = render(rule, "repeat", red, key=key, started_at=STARTED, notified_at=RESOLVED)
    assert webhook.send(ch, repeat).ok
    assert hook.to("again")[-1].headers["x-pulsehook-delivery"] not in ids


# --- signatures, answers, secrets ------------------------------------------------------


def test_a_wrong_secret_is_refused_by_the_receiver_and_parked(
    hook: SignedReceiver, rule: Rule
) -> None:
    firing, _ = notices(rule)
    result = webhook.send(channel(f"{hook.url}/hook/wrong", secret="not-the-secret"), firing)
    assert not result.ok and result.permanent and result.status == 401
    assert "not-the-secret" not in (result.error or "")
    (hit,) = hook.to("wrong")
    assert hit.verified is False
    assert hit.headers["x-pulsehook-signature-256"].startswith("sha256=")
    # The receiver checks against the body: a body altered on the way fails as well.
    signature = hit.headers["x-pulsehook-signature-256"]
    assert not hook.verify(hit.raw + b" ", signature)


def test_without_a_secret_nothing_is_signed(rule: Rule) -> None:
    firing, _ = notices(rule)
    with signed_receiver(secret=None) as open_hook:
        assert webhook.send(channel(f"{open_hook.url}/hook/open"), firing).ok
        (hit,) = open_hook.delivered("open")
    assert "x-pulsehook-signature-256" not in hit.headers
    assert hit.headers["x-pulsehook-event"] == "firing" and hit.body["version"] == 1


def test_unavailable_then_accepted_is_retried_no_sooner_than_retry_after(
    hook: SignedReceiver, rule: Rule
) -> None:
    firing, _ = notices(rule)
    ch = channel(f"{hook.url}/hook/busy", secret="${HOOK_SECRET}")
    hook.script("busy", (503, "7"))
    first = webhook.send(ch, firing)
    assert not first.ok and not first.permanent
    assert first.status == 503 and first.retry_after == 7.0
    second = webhook.send(ch, firing)
    assert second.ok and second.status == 200
    assert len(hook.to("busy")) == 2 and len(hook.delivered("busy")) == 1


@pytest.mark.parametrize(
    ("code", "permanent"),
    [(404, True), (400, True), (410, True), (408, False), (429, False), (500, False)],
)
def test_answers_are_classified_as_every_channels_are(
    hook: SignedReceiver, rule: Rule, code: int, permanent: bool
) -> None:
    firing, _ = notices(rule)
    hook.script("status", (code, "0"))
    result = webhook.send(channel(f"{hook.url}/hook/status", secret="${HOOK_SECRET}"), firing)
    assert not result.ok and result.status == code and result.permanent is permanent
    assert result.error is not None and result.error.startswith(f"HTTP {code}")


def test_a_refused_connection_and_a_timeout_are_retried(hook: SignedReceiver, rule: Rule) -> None:
    firing, _ = notices(rule)
    closed = webhook.send(channel(f"http://127.0.0.1:{free_port()}/hook/x"), firing)
    assert not closed.ok and not closed.permanent and closed.error
    slow = webhook.send(channel(f"{hook.url}/hook/slow", timeout=0.3), firing)
    hook.release.set()
    assert not slow.ok and not slow.permanent and slow.error == "timed out after 0.3 s"


def test_extra_headers_are_sent_and_secret(hook: SignedReceiver, rule: Rule) -> None:
    firing, _ = notices(rule)
    ch = channel(
        f"{hook.url}/hook/auth",
        secret="${HOOK_SECRET}",
        headers={"Authorization": f"Bearer {BEARER}", "X-Team": "sre"},
    )
    assert webhook.send(ch, firing).ok
    (hit,) = hook.delivered("auth")
    assert hit.headers["authorization"] == f"Bearer {BEARER}"
    assert hit.headers["x-team"] == "sre" and hit.verified


def test_secrets_are_never_shown(hook: SignedReceiver, rule: Rule) -> None:
    firing, _ = notices(rule)
    ch = channel(
        f"{hook.url}/hook/echo",
        secret="${HOOK_SECRET}",
        headers={"Authorization": f"Bearer {BEARER}"},
    )
    shown = ch.public()
    assert shown["secret"] == "***" and shown["headers"] == "***"
    assert shown["url"] == f"{hook.url}/hook/echo"
    assert HOOK_SECRET not in str(shown) and BEARER not in str(shown)
    # A literal secret (not from ${VAR}) is hidden as well: the kind says it is one.
    assert channel(hook.url, secret="literal-secret-value").public()["secret"] == "***"
    # The receiver answers quoting the Authorization header and the secret.
    result = webhook.send(ch, firing)
    assert not result.ok and result.permanent and result.status == 400
    for text in (result.error or "", result.response or ""):
        assert "***" in text
        assert HOOK_SECRET not in text and BEARER not in text


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"url": "ftp://127.0.0.1/hook"}, "url is not an http(s) URL"),
        ({"url": "127.0.0.1:9/hook"}, "url is not an http(s) URL"),
        ({"url": "https:///no-host"}, "url is not an http(s) URL"),
        ({"url": ""}, "url is not set"),
        ({"format": "slack"}, "format must be one of pulsehook, alertmanager"),
        ({"secret": ""}, "secret must be a non-empty string"),
        ({"timeout": 0}, "timeout must be a number"),
        ({"timeout": "fast"}, "timeout must be a number"),
        ({"headers": "Authorization: x"}, "headers must be a table"),
        ({"headers": {"Content-Type": "text/plain"}}, "headers: Content-Type is set by"),
        ({"headers": {"X-Pulsehook-Event": "x"}}, "headers: X-Pulsehook-Event is set by"),
        ({"headers": {"Bad Name": "x"}}, "is not a header name"),
        ({"headers": {"X-A": "a\r\nX-Injected: 1"}}, "headers.X-A must be printable ASCII"),
    ],
)
def test_options_that_can_never_send_are_refused_and_nothing_is_sent(
    hook: SignedReceiver, rule: Rule, options: dict[str, Any], problem: str
) -> None:
    firing, _ = notices(rule)
    ch = channel(**({"url": f"{hook.url}/hook/never"} | options))
    result = webhook.send(ch, firing)
    assert result == SendResult(ok=False, permanent=True, error=result.error)
    assert result.error is not None and problem in result.error, result.error
    assert BEARER not in result.error
    assert hook.to("never") == []


# --- through the running service --------------------------------------------------------


def test_the_running_service_sends_signed_alertmanager_notices_through_the_outbox(
    tmp_path: Path,
) -> None:
    with signed_receiver() as hook:
        rules = tmp_path / "rules"
        rules.mkdir()
        (rules / "hook.toml").write_text(
            "[channels.hook]\n"
            'kind = "webhook"\n'
            f'url = "{hook.url}/hook/e2e"\n'
            'secret = "${HOOK_SECRET}"\n'
            'format = "alertmanager"\n\n'
            "[[rule]]\n"
            'name = "build_failure"\n'
            "condition = \"build.status == 'failure' and build.default_branch\"\n"
            'channels = ["hook"]\n'
        )
        settings = Settings(
            data_dir=tmp_path / "data",
            rules_dir=rules,
            webhook_secret=SecretStr(SECRET),
            api_token=SecretStr(API_TOKEN),
            flap_interval="0s",
            retry_base_seconds=0.05,
        )
        loaded = load_rules(rules, {"HOOK_SECRET": HOOK_SECRET})
        hook.script("e2e", (500, None))  # the first attempt fails: the outbox retries
        with (
            live(create_app(settings, rules=loaded)) as server,
            httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as client,
        ):
            red = workflow_run(5001)
            repo = red["repository"]["full_name"]
            assert deliver(client, "workflow_run", red).status_code == 202
            wait_for(lambda: len(hook.delivered("e2e")) == 1)
            green = workflow_run(5002, "success", "2026-01-01T11:00:00Z")
            assert deliver(client, "workflow_run", green).status_code == 202
            wait_for(lambda: len(hook.delivered("e2e")) == 2)
            wait_for(
                lambda: all(
                    n["status"] == "sent" for n in client.get("/api/v1/outbox").json()["notices"]
                )
            )
            notices = client.get("/api/v1/outbox").json()["notices"]
            shown = client.get("/api/v1/rules").json()
    hits = hook.to("e2e")
    assert [h.code for h in hits] == [500, 200, 200]
    assert all(h.verified for h in hits)
    # The retry is the same notice: the same delivery id, the same signed bytes.
    assert hits[0].headers["x-pulsehook-delivery"] == hits[1].headers["x-pulsehook-delivery"]
    assert hits[0].raw == hits[1].raw
    assert sorted(n["attempts"] for n in notices) == [1, 2]
    firing, resolved = hits[1].body, hits[2].body
    assert set(firing) == V4_KEYS and firing["receiver"] == "hook"
    assert [firing["status"], resolved["status"]] == ["firing", "resolved"]
    assert [h.headers["x-pulsehook-event"] for h in hits[1:]] == ["firing", "resolved"]
    (red_alert,), (green_alert,) = firing["alerts"], resolved["alerts"]
    assert red_alert["labels"]["alertname"] == "build_failure"
    assert red_alert["labels"]["repo"] == repo and red_alert["labels"]["severity"] == "error"
    assert red_alert["endsAt"] == ZERO_TIME
    assert rfc3339(green_alert["endsAt"]) >= rfc3339(red_alert["startsAt"])
    assert green_alert["startsAt"] == red_alert["startsAt"]
    assert green_alert["fingerprint"] == red_alert["fingerprint"]
    assert HOOK_SECRET not in json.dumps(shown)
    (hook_channel,) = [c for c in shown["channels"] if c["name"] == "hook"]
    assert hook_channel["kind"] == "webhook" and hook_channel["options"]["secret"] == "***"


def test_header_values_come_from_the_environment_and_stay_secret() -> None:
    specs = {
        "hook": (
            Path("rules/hooks.toml"),
            {
                "kind": "webhook",
                "url": "https://hooks.example.com/x",
                "headers": {"Authorization": "Bearer ${HOOK_BEARER}", "X-Team": "sre"},
            },
        )
    }
    channels, unconfigured, problems = resolve_channels(specs, {"HOOK_BEARER": "b-3xample-t0k"})
    assert problems == [] and "hook" not in unconfigured
    hook = channels["hook"]
    assert hook.options["headers"] == {"Authorization": "Bearer b-3xample-t0k", "X-Team": "sre"}
    assert "b-3xample-t0k" not in json.dumps(hook.public())
    # An unset variable leaves the channel unconfigured, saying which to set.
    _, unset, _ = resolve_channels(specs, {})
    assert unset["hook"] == "set HOOK_BEARER"
