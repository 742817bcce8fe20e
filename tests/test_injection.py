"""Hostile payload strings end to end: signed webhooks into the app on loopback, and
what the Slack, Discord and SMTP stand-ins receive and the summary files say; rule
regular expressions in linear time; message templates that cannot run away."""

from __future__ import annotations

import copy
import email
import email.policy
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from pulseox.dashboard import PulseOxDashboard  # type: ignore[import-untyped]
from pulseox.specs import PulseOxSpec  # type: ignore[import-untyped]
from pydantic import SecretStr

from pulsehook.alerts.digest import render_digest
from pulsehook.app import create_app
from pulsehook.cli import main
from pulsehook.notify import discord as discord_transport
from pulsehook.notify import email as email_transport
from pulsehook.notify import escape
from pulsehook.notify.base import ChannelConfig, Message
from pulsehook.rules.evaluate import ConditionError, Evaluator, compile_condition
from pulsehook.rules.load import RulesInvalid, load_rules
from pulsehook.rules.messages import render
from pulsehook.rules.templates import check_template, render_template
from pulsehook.settings import Settings
from pulsehook.summary.model import Item
from pulsehook.summary.render import Snapshot, text

from .conftest import API_TOKEN, AUTH, SECRET, deliver, drained, live, payload, wait_for
from .standins import Mailbox, Receiver, receiver, smtp_server

# What an attacker puts in every string of a payload.
EVIL = (
    "<!channel> <!here> <@U1> <https://evil.example|click> @everyone @here"
    " [click](https://evil.example) \r\nBcc: x@evil.example javascript:alert(1)"
    " <img src=x onerror=alert(1)> & <b>bold</b> \x1b[2J\x07"
)
SLACK_FORBIDDEN = ("<!channel>", "<!here>", "<@U1>", "<https://evil.example|click>", "<img", "<b>")
HEARTBEAT_TOKEN = "hb-token"
TO = ["sre@example.org"]

RULES = """\
[[rule]]
name = "red_run"
condition = "build.status == 'failure'"
channels = ["slack", "discord", "email"]

[[rule]]
name = "red_run_digest"
condition = "build.status == 'failure'"
channels = ["slack"]
frequency = "daily_digest"
"""


def hostile_run(run_id: int = 7001, branch: str = "main" + EVIL) -> dict[str, Any]:
    """GitHub's workflow_run example, failed, with EVIL in every string a notice shows."""
    data = copy.deepcopy(payload("workflow_run.completed"))
    data["repository"]["full_name"] = "octo-org/octo" + EVIL
    data["repository"]["default_branch"] = branch
    data["workflow"]["name"] = "CI " + EVIL
    data["workflow_run"].update(
        id=run_id,
        name="CI " + EVIL,
        head_branch=branch,
        conclusion="failure",
        html_url="javascript:alert(1)",
        updated_at="2026-01-01T10:00:00Z",
    )
    return data


@dataclass
class Env:
    client: httpx.Client
    hooks: Receiver
    mailbox: Mailbox
    settings: Settings

    def settle(self) -> None:
        wait_for(lambda: drained(self.client))
        wait_for(
            lambda: (
                not self.client.get("/api/v1/outbox", params={"status": "pending"}).json()[
                    "notices"
                ]
            )
        )


def channel_env(hooks: Receiver, smtp_port: int) -> dict[str, str]:
    return {
        "SLACK_WEBHOOK_URL": f"{hooks.url}/hook/slack",
        "DISCORD_WEBHOOK_URL": f"{hooks.url}/hook/discord",
        "PULSEHOOK_SMTP_HOST": "127.0.0.1",
        "PULSEHOOK_SMTP_PORT": str(smtp_port),
        "PULSEHOOK_SMTP_FROM": "pulsehook@example.org",
        "PULSEHOOK_SMTP_TO": ",".join(TO),
    }


def make_settings(tmp_path: Path, rules_text: str) -> Settings:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "alerts.toml").write_text(rules_text)
    return Settings(
        data_dir=tmp_path / "data",
        rules_dir=rules,
        webhook_secret=SecretStr(SECRET),
        api_token=SecretStr(API_TOKEN),
        heartbeat_tokens=SecretStr(HEARTBEAT_TOKEN),
        summary_debounce_seconds=0.05,
        flap_interval="0s",
        retry_base_seconds=0.05,
    )


@contextmanager
def running(tmp_path: Path, rules_text: str = RULES) -> Iterator[Env]:
    with receiver() as hooks, smtp_server() as (mailbox, port):
        settings = make_settings(tmp_path, rules_text)
        rules = load_rules(settings.rules_dir, channel_env(hooks, port))
        with (
            live(create_app(settings, rules=rules)) as srv,
            httpx.Client(base_url=srv.url, headers=AUTH, timeout=10) as client,
        ):
            yield Env(client, hooks, mailbox, settings)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with running(tmp_path) as e:
        yield e


def links_in_mrkdwn(mrkdwn: str) -> list[str]:
    """Every ``<...>`` Slack would parse: a mention, a ping or a link."""
    return re.findall(r"<([^<>]*)>", mrkdwn)


# --- Slack: notice and digest ---------------------------------------------------------


def test_slack_notice_escapes_every_payload_string(env: Env) -> None:
    assert deliver(env.client, "workflow_run", hostile_run()).status_code == 202
    env.settle()
    (body,) = env.hooks.delivered("slack")
    mrkdwn = body["text"]
    for bad in SLACK_FORBIDDEN:
        assert bad not in mrkdwn
    # Nothing Slack would parse as a mention, a ping or a link: the payload's URL is
    # javascript:, so pulsehook's own <url|open> link is dropped too.
    assert links_in_mrkdwn(mrkdwn) == []
    assert "&lt;!channel&gt;" in mrkdwn and "&lt;https://evil.example|click&gt;" in mrkdwn
    assert "&amp; &lt;b&gt;bold&lt;/b&gt;" in mrkdwn
    assert "*FIRING*" in mrkdwn and "`red_run`" in mrkdwn  # pulsehook's own formatting
    # What Slack shows: the blocks, each escaped the same way; no attachment repeats it.
    assert "attachments" not in body
    shown = [b["text"]["text"] for b in body["blocks"] if b["type"] == "section"]
    shown += [e["text"] for b in body["blocks"] if b["type"] == "context" for e in b["elements"]]
    for said in shown:
        assert links_in_mrkdwn(said) == []
        assert not any(bad in said for bad in SLACK_FORBIDDEN)
    assert "&lt;!channel&gt;" in shown[0] and "\r" not in shown[0]


def test_slack_digest_escapes_every_payload_string(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert deliver(env.client, "workflow_run", hostile_run()).status_code == 202
    env.settle()
    monkeypatch.setenv("PULSEHOOK_DATA_DIR", str(env.settings.data_dir))
    monkeypatch.setenv("PULSEHOOK_RULES_DIR", str(env.settings.rules_dir))
    monkeypatch.setenv("SLACK_WEBHOOK_URL", f"{env.hooks.url}/hook/digest")
    result = CliRunner().invoke(main, ["digest", "send", "--now"])
    assert result.exit_code == 0, result.output
    assert "1 digest(s) queued" in result.output
    (body,) = env.hooks.delivered("digest")
    mrkdwn = body["text"]
    for bad in SLACK_FORBIDDEN:
        assert bad not in mrkdwn
    assert links_in_mrkdwn(mrkdwn) == []
    assert "&lt;!channel&gt;" in mrkdwn and "`red_run_digest` (1)" in mrkdwn
    assert mrkdwn.startswith("*[pulsehook digest] 1 alert notice(s)")


def test_digest_links_only_to_http_urls() -> None:
    entry = {"repo": "o/r", "rule": "x", "state": "firing", "title": "t <!here>"}
    good = render_digest("c", "d", [entry | {"url": "https://ci.example/1"}])
    assert "<https://ci.example/1|t &lt;!here&gt;>" in good.markdown
    assert '<a href="https://ci.example/1">t &lt;!here&gt;</a>' in (good.html or "")
    assert "[t \\<!here\\>](https://ci.example/1)" in good.discord
    hostile = render_digest("c", "d", [entry | {"repo": "<!channel> <script>"}])
    assert "<h3>&lt;!channel&gt; &lt;script&gt;</h3>" in (hostile.html or "")
    assert "*&lt;!channel&gt; &lt;script&gt;*" in hostile.markdown
    for url in ("javascript:alert(1)", "https://evil.example|x", "https://a.example/<x>"):
        bad = render_digest("c", "d", [entry | {"url": url}])
        assert "href" not in (bad.html or "") and links_in_mrkdwn(bad.markdown) == []
        assert "](" not in bad.discord and url not in bad.text


# --- Discord ---------------------------------------------------------------------------


def test_discord_gets_no_mention_and_no_masked_link(env: Env) -> None:
    assert deliver(env.client, "workflow_run", hostile_run()).status_code == 202
    env.settle()
    (body,) = env.hooks.delivered("discord")
    assert body["allowed_mentions"] == {"parse": []}
    content = body["content"]
    assert "@everyone" not in content and "@here" not in content
    assert "@\u200beveryone" in content
    assert "<@U1>" not in content and "<!channel>" not in content
    # No unescaped "[text](": the payload's link shows as text, brackets escaped.
    assert not re.search(r"(?<!\\)\[[^\]]*(?<!\\)\]\(", content)
    assert "\\[click\\]\\(https://evil.example\\)" in content
    assert "**FIRING**" in content  # pulsehook's own formatting


# --- email -----------------------------------------------------------------------------


def test_email_subject_is_one_clean_line(env: Env) -> None:
    assert deliver(env.client, "workflow_run", hostile_run()).status_code == 202
    env.settle()
    wait_for(lambda: len(env.mailbox.messages) == 1)
    (envelope,) = env.mailbox.messages
    assert envelope.rcpt_tos == TO  # no Bcc reached the SMTP conversation
    raw = envelope.content
    assert isinstance(raw, bytes)
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert not re.search(rb"^bcc:", head, re.MULTILINE | re.IGNORECASE)
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(mail, EmailMessage)
    assert mail.get_all("Bcc") is None
    subject = str(mail["Subject"])
    assert not re.search(r"[\x00-\x1f\x7f]", subject)
    # Short: the state, the rule, the repository cut with an ellipsis.
    assert subject.startswith("[FIRING] red_run in octo-org/octo<!channel>")
    assert len(subject) < 80 and subject.endswith("…")
    body = mail.get_body(("plain",))
    assert body is not None
    lines = body.get_content().splitlines()
    # The hostile repository whole, kept as text on its own line of the body.
    assert any(line.startswith("Repository: ") and "Bcc: x@evil.example" in line for line in lines)


def test_email_transport_cleans_any_subject_itself() -> None:
    hostile = Message(title="down\r\nBcc: x@evil.example\x00\x1b[2J", text="body", markdown="")
    with smtp_server() as (mailbox, port):
        options = {"host": "127.0.0.1", "port": port, "to": TO, "from": "p@example.org"}
        result = email_transport.send(ChannelConfig("mail", "email", options), hostile)
        assert result.ok, result
        wait_for(lambda: len(mailbox.messages) == 1)
    (envelope,) = mailbox.messages
    assert envelope.rcpt_tos == TO
    raw = envelope.content
    assert isinstance(raw, bytes)
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    assert mail.get_all("Bcc") is None
    assert str(mail["Subject"]) == "down Bcc: x@evil.example [2J"


def test_discord_transport_breaks_everyone_and_here_itself() -> None:
    with receiver() as hooks:
        channel = ChannelConfig("d", "discord", {"webhook_url": f"{hooks.url}/hook/d"})
        message = Message(title="t", text="t", markdown="", discord="hi @everyone and @Here")
        assert discord_transport.send(channel, message).ok
        (body,) = hooks.delivered("d")
    assert body["content"] == "hi @\u200beveryone and @\u200bHere"
    assert body["allowed_mentions"] == {"parse": []}


# --- the summary files -----------------------------------------------------------------

SUMMARY_RULES = """[[expect]]
owner = "octo"
repo = "status"
path = "jobs/backup.md"
schedule = "1h"
"""
FORGED_NOTE = (
    "ok\n\n# Metadata\n- report: BAD\n\n# ERROR\n\n"
    "- [forged](javascript:alert(1)) <script>x</script>"
)
HEADINGS = {"Changes", "ERROR", "MISSING", "OK", "Metadata"}


def md_lines_are_pulseox_layout(body: str) -> list[str]:
    """The headings in order, checking every other line is an entry or the footer."""
    headings: list[str] = []
    for line in body.split("\n"):
        if line.startswith("# "):
            assert line[2:] in HEADINGS, line
            headings.append(line[2:])
        elif line and headings[-1] == "Metadata":
            assert re.fullmatch(r"- (report: GOOD|updated: .+)", line), line
        elif line:
            assert line.startswith("- [") and not line.startswith("- [forged]"), line
    return headings


def test_summary_files_have_no_forged_line_and_no_script_link(tmp_path: Path) -> None:
    with running(tmp_path, RULES + SUMMARY_RULES) as env:
        heartbeat = env.client.post(
            "/api/v1/heartbeats/octo/status/jobs/backup.md",
            json={"report": "GOOD", "note": FORGED_NOTE},
            headers={"Authorization": f"Bearer {HEARTBEAT_TOKEN}"},
        )
        assert heartbeat.status_code == 202, heartbeat.text
        assert deliver(env.client, "workflow_run", hostile_run()).status_code == 202
        env.settle()

        def both_listed() -> bool:
            body = env.client.get("/summary.md")
            return body.status_code == 200 and "forged" in body.text and "CI " in body.text

        wait_for(both_listed)
        md = env.client.get("/summary.md").text
        org = env.client.get("/summary.org").text
        document = env.client.get("/summary.md.json").text

    assert md_lines_are_pulseox_layout(md)[-1] == "Metadata"
    lines = md.split("\n")
    assert lines.count("# Metadata") == 1 and lines.count("# ERROR") == 1
    # Link targets: "](" not escaped (payload brackets are, so they link nowhere).
    targets = re.findall(r"(?<!\\)\]\(([^)\s]*)", md)
    assert targets and not [t for t in targets if not t.startswith(("https://", "octo"))]
    assert "javascript:alert" not in "".join(targets)
    for raw_html in ("<script", "<img", "<b>", "<!channel>"):
        assert raw_html not in md
    # pulseox's own reader finds the real footer, not the forged one.
    spec = PulseOxSpec(owner="octo", repo="status", path="summary.md", schedule="1h")
    assert spec._parse_metadata(md)["report"] == "GOOD"
    assert org.split("\n").count("* Metadata") == 1 and "[[javascript:" not in org
    assert all(not line.startswith("* ") or line[2:] in HEADINGS for line in org.split("\n"))
    # The JSON pulseox loads: one-line strings, and the same text.
    loaded = PulseOxDashboard.model_validate_json(document)
    assert loaded.summary.text == md
    for item in loaded.spec_list:
        for value in (item.path, item.note or "", item.owner or "", item.repo):
            assert "\n" not in value and "\r" not in value
    # Even pulseox rewriting the text from those specs forges no section.
    loaded.summary.format_text(change_dict=loaded.changes, mode="md")
    assert all(
        not line.startswith("# ") or line[2:] in HEADINGS
        for line in loaded.summary.text.split("\n")
    )


def test_summary_links_only_to_http_and_keeps_paths_relative() -> None:
    items = [
        (
            Item(path="o/r/actions/CI", owner="o", repo="r", kind="workflow", link="javascript:x"),
            "OK",
        ),
        (Item(path="javascript:alert(1)", owner="o", repo="r", kind="heartbeat"), "OK"),
        (
            Item(path="o/r/a", owner="o", repo="r", kind="workflow", link="https://ci.example/1"),
            "OK",
        ),
    ]
    body = text(Snapshot(items=items), mode="md")
    assert "[o/r/actions/CI](o/r/actions/CI)" in body
    assert "[javascript:alert(1)](./javascript:alert%281%29)" in body
    assert "[o/r/a](https://ci.example/1)" in body
    org = text(Snapshot(items=items), mode="org")
    assert "[[./javascript:alert%281%29][javascript:alert(1)]]" in org


# --- matches(): RE2, linear time --------------------------------------------------------


def test_catastrophic_pattern_runs_in_linear_time() -> None:
    condition = "matches(build.branch, '(a+)+$')"
    tree, kind, fields = compile_condition(condition)
    evaluator = Evaluator()
    started = time.monotonic()
    hostile = evaluator.evaluate(tree, kind, {"branch": "a" * 5000 + "b"}, condition, fields)
    elapsed = time.monotonic() - started
    assert hostile is False
    assert elapsed < 1.0  # Python's backtracking takes longer than the universe has
    assert evaluator.evaluate(tree, kind, {"branch": "a" * 5000}, condition, fields) is True


@pytest.mark.parametrize("pattern", ["(a)\\1", "(?=main)", "(?<!re)lease", "x{2000}"])
def test_patterns_re2_cannot_run_are_refused_at_load(tmp_path: Path, pattern: str) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "alerts.toml").write_text(
        f"[[rule]]\nname = \"branchy\"\ncondition = '''matches(build.branch, {pattern!r})'''\n"
        'channels = ["slack"]\n'
    )
    with pytest.raises(RulesInvalid) as refused:
        load_rules(rules, {"SLACK_WEBHOOK_URL": "http://127.0.0.1:9/x"})
    (problem,) = refused.value.problems
    assert "rule 'branchy'" in problem and repr(pattern) in problem and "not supported" in problem


def test_a_pattern_from_the_data_that_re2_cannot_run_is_a_clear_error() -> None:
    condition = "matches(build.branch, build.workflow)"
    tree, kind, fields = compile_condition(condition)
    data = {"branch": "main", "workflow": "(?=x)"}
    with pytest.raises(ConditionError, match=r"pattern '\(\?=x\)' is not supported"):
        Evaluator().evaluate(tree, kind, data, condition, fields)


# --- message templates: bounded ----------------------------------------------------------

RUNAWAY = {
    "centered": "{{ 'x'|center(10**9) }}",
    "counted": "{% for i in range(10**9) %}{{ i }}{% endfor %}",
    "nested": "{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}",
}


def runaway_rules() -> str:
    # Not grouped: each delivery's notices go out now, not at the end of a window.
    return "".join(
        f'[[rule]]\nname = "{name}"\ncondition = "build.status == \'failure\'"\n'
        f'channels = ["slack"]\nmessage = "{template}"\ngroup = false\n\n'
        for name, template in RUNAWAY.items()
    )


def test_runaway_templates_send_the_default_message_and_the_service_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pulsehook.rules.messages")
    with running(tmp_path, runaway_rules()) as env:
        started = time.monotonic()
        assert deliver(env.client, "workflow_run", hostile_run(8001, "b1")).status_code == 202
        env.settle()
        assert time.monotonic() - started < 5
        # One notice per rule, or fewer when Slack's pace merged them: each rule says it.
        first = env.hooks.delivered("slack")
        said = "\n".join(body["text"] for body in first)
        assert said.count("message template failed") == len(RUNAWAY)
        assert all(name in said for name in RUNAWAY)
        for body in first:
            assert "b1" in body["text"] and len(body["text"]) < 4000
        # Still working: the next delivery is taken and notified as well.
        assert deliver(env.client, "workflow_run", hostile_run(8002, "b2")).status_code == 202
        env.settle()
        said = "\n".join(body["text"] for body in env.hooks.delivered("slack"))
        assert said.count("message template failed") == 2 * len(RUNAWAY)
        assert env.client.get("/readyz").status_code == 200
    problems = [r for r in caplog.records if "message template not used" in r.getMessage()]
    # Logged once per rule, whatever the number of notices; no payload in the line.
    # (Read from the message: the redacting filter may have rendered the arguments in.)
    named = [r.getMessage().partition("rule '")[2].partition("'")[0] for r in problems]
    assert sorted(named) == sorted(RUNAWAY)
    assert not any("<!channel>" in r.getMessage() for r in problems)


@pytest.mark.parametrize(
    "template",
    [
        "{{ 'x'.ljust(10**9) }}",
        "{{ '%999999999d' % 1 }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{{ 'abc'|replace('', 'y' * 9000) }}",
        "{{ (1).to_bytes(10**9, 'big') }}",
        "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}{{ ns.s }}",
        "{% set a = 'x' * 9000 %}{% set b = a ~ a %}{{ b ~ b }}",
        "{{ ['x' * 5000] * 5000 }}",
        "{% macro d(n) %}{% if n %}{{ d(n-1) }}{{ d(n-1) }}{% endif %}{% endmacro %}{{ d(40) }}",
        "{{ lipsum(10**9) }}",
        "{{ 'abc'|batch(10**9, 'x')|list }}",
        "{{ [[1] * 100] * 100|sum(start=[]) }}",
    ],
)
def test_templates_that_would_run_away_are_stopped_quickly(template: str) -> None:
    assert check_template(template) is None  # valid: stopped when rendered
    started = time.monotonic()
    with pytest.raises(Exception):  # noqa: B017 - any refusal will do; the caller falls back
        render_template(template, {"repo": "o/r", "branch": "main"}, "build")
    assert time.monotonic() - started < 1.0


def test_template_output_is_cut_and_values_are_escaped_but_the_template_is_not() -> None:
    long = render_template("{% for i in range(1000) %}{{ 'x' * 100 }}{% endfor %}", {}, "build")
    assert 3000 < len(escape.plain(long)) <= 4097 and escape.plain(long).endswith("…")
    mixed = render_template(
        "{{ build.branch }} *broke* <https://ok.example|see>", {"branch": "<!here>"}, "build"
    )
    assert escape.slack(mixed) == "&lt;!here&gt; *broke* <https://ok.example|see>"
    assert escape.plain(mixed) == "<!here> *broke* <https://ok.example|see>"


def test_notice_links_only_to_safe_http_urls(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "alerts.toml").write_text(
        '[[rule]]\nname = "r"\ncondition = "build.status == \'failure\'"\nchannels = ["slack"]\n'
    )
    rule = load_rules(rules, {"SLACK_WEBHOOK_URL": "http://127.0.0.1:9/x"}).rules[0]
    fact = {"repo": "o/r", "workflow": "CI", "branch": "main", "status": "failure"}
    good = render(rule, "firing", fact | {"url": "https://ci.example/run/1"})
    assert good.markdown.endswith("<https://ci.example/run/1|open>")
    assert good.discord.endswith("[open](https://ci.example/run/1)")
    for url in ("javascript:alert(1)", "https://ci.example/x|y", "https://ci.example/<b>"):
        bad = render(rule, "firing", fact | {"url": url})
        assert bad.url is None and links_in_mrkdwn(bad.markdown) == []
        assert "Link:" not in bad.text


def test_escape_functions() -> None:
    assert escape.slack_escape("a & <b>") == "a &amp; &lt;b&gt;"
    assert escape.discord_escape("@everyone [x](y)") == "@\u200beveryone \\[x\\]\\(y\\)"
    assert escape.header(" a\r\nBcc: x\x00y ") == "a Bcc: x y"
    assert escape.single_line("a\nb\u2028c") == "a b c"
    # An outside value cannot close its own marked region.
    forged = escape.value(f"{escape.CLOSE}<!channel>{escape.OPEN}")
    assert escape.slack(forged) == "&lt;!channel&gt;"
