"""Notices written for the person reading them: Slack blocks said once, a short email
subject with an advisory's particulars in text and HTML, digests with severity and
ids, the advisory's severity shown (PagerDuty included), and ``notify test`` on
PagerDuty leaving nothing open — against loopback stand-ins and a real SMTP server."""

from __future__ import annotations

import dataclasses
import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pulsehook.alerts import engine
from pulsehook.alerts.digest import render_digest
from pulsehook.alerts.grouping import Member, Tally, render_group
from pulsehook.cli import main
from pulsehook.facts import Vulnerability, fact_dict
from pulsehook.github.normalize import normalize
from pulsehook.notify import email as email_transport
from pulsehook.notify import pagerduty, slack
from pulsehook.notify.base import ChannelConfig
from pulsehook.rules.evaluate import Evaluator
from pulsehook.rules.load import load_rules
from pulsehook.rules.messages import render
from pulsehook.rules.model import RuleSet
from pulsehook.store import alerts as alert_store
from pulsehook.store.db import Tx

from . import stores
from .conftest import payload, wait_for
from .standins import receiver, smtp_server

LONG = "critical_vulnerability_in_a_dependency_of_the_payments_service"
STARTED = "2026-01-31T08:00:00Z"


def rules(tmp_path: Path) -> RuleSet:
    directory = tmp_path / "rules"
    directory.mkdir(exist_ok=True)
    (directory / "rules.toml").write_text(f"""
[[rule]]
name = "{LONG}"
condition = "vulnerability.state == 'open'"
channels = ["slack"]
severity = "error"
""")
    return load_rules(directory, {"SLACK_WEBHOOK_URL": "https://hooks.slack.com/x"})


def advisory(severity: str = "critical") -> dict[str, Any]:
    """The real dependabot_alert payload, its advisory scored ``severity``."""
    data = payload("dependabot_alert.created")
    data["alert"]["security_advisory"]["severity"] = severity
    data["repository"]["full_name"] = "octo-org/" + "a-very-long-repository-name" * 3
    (fact,) = normalize("dependabot_alert", data)
    return fact_dict(fact)


def notice(tmp_path: Path, state: str = "firing") -> Any:
    rule = rules(tmp_path).rules[0]
    return render(
        rule,
        state,
        advisory(),
        key="k",
        started_at=STARTED,
        resolved_at="2026-01-31T10:30:00Z" if state == "resolved" else None,
    )


def test_slack_says_a_notice_once_in_blocks(tmp_path: Path) -> None:
    message = notice(tmp_path)
    body = slack.body(message)
    section, context = body["blocks"]
    line = section["text"]["text"]
    assert "\n" not in line  # one line: what, where, link
    assert line.startswith(":red_circle: *FIRING* *octo-org/a-very-long")
    assert "critical vulnerability in semver (GHSA-c2qf-rxjj-qqgw)" in line
    assert line.endswith("<https://github.com/wolfy1339/pika-pack/security/dependabot/20|open>")
    said = context["elements"][0]["text"]
    assert said == f"severity *critical* · rule `{LONG}` · since 2026-01-31 08:00 UTC"
    assert "attachments" not in body  # nothing repeats the line
    assert message.title not in line  # the old bracketed title is not shown again


def test_email_subject_is_short_and_the_body_has_the_advisory(tmp_path: Path) -> None:
    message = notice(tmp_path)
    assert len(message.subject) < 80
    assert message.subject.startswith(f"[FIRING] {LONG[:20]}")
    assert message.subject.endswith("…") and " in octo-org/" in message.subject
    with smtp_server() as (box, port):
        channel = ChannelConfig("mail", "email", {"host": "127.0.0.1", "port": port, "to": "a@b.c"})
        assert email_transport.send(channel, message).ok
        wait_for(lambda: len(box.messages) == 1)
    raw = box.messages[0].content
    assert isinstance(raw, bytes)
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(mail, EmailMessage)
    assert str(mail["Subject"]) == message.subject
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None and html is not None
    plain = text.get_content()
    for line in (
        "Severity: critical",
        "Repository: octo-org/a-very-long-repository-name",
        "What happened: critical vulnerability in semver",
        "When: since 2026-01-31 08:00 UTC",
        "Package: npm/semver",
        "Affected versions: < 7.5.2",
        "Patched version: 7.5.2",
        "Advisory: GHSA-c2qf-rxjj-qqgw https://github.com/advisories/GHSA-c2qf-rxjj-qqgw",
        "CVE: CVE-2022-25883 https://nvd.nist.gov/vuln/detail/CVE-2022-25883",
        f"Rule: {LONG} (error)",
    ):
        assert line in plain, line
    markup = html.get_content()
    assert (
        '<th scope="row" style="text-align:left;padding-right:1em">Affected versions</th>' in markup
    )
    assert "<td>&lt; 7.5.2</td>" in markup  # escaped
    assert (
        '<a href="https://github.com/advisories/GHSA-c2qf-rxjj-qqgw">GHSA-c2qf-rxjj-qqgw</a>'
        in markup
    )


def test_a_resolved_notice_says_how_long_it_fired(tmp_path: Path) -> None:
    message = notice(tmp_path, "resolved")
    assert "firing from 2026-01-31 08:00 UTC to 2026-01-31 10:30 UTC" in message.context
    assert message.subject.startswith("[RESOLVED] ")
    assert message.details["severity"] == "critical"
    assert message.details["rule_severity"] == "error"


@pytest.mark.parametrize(("scored", "expected"), [("critical", "critical"), ("high", "error")])
def test_pagerduty_maps_the_advisorys_severity(tmp_path: Path, scored: str, expected: str) -> None:
    rule = rules(tmp_path).rules[0]  # the rule says "error"
    message = render(rule, "firing", advisory(scored), key="k")
    assert message.severity == scored
    channel = ChannelConfig("pd", "pagerduty", {"routing_key": "r"})
    assert pagerduty.event(channel, message)["severity"] == expected


def test_a_fact_without_severity_shows_the_rules(tmp_path: Path) -> None:
    rule = rules(tmp_path).rules[0]
    fact = advisory() | {"severity": "unknown"}
    message = render(rule, "firing", fact, key="k")
    assert message.severity == "error" and "severity *error*" in message.context


def test_the_alert_record_has_the_advisorys_severity(tmp_path: Path) -> None:
    ruleset = rules(tmp_path)
    db = stores.Handle(tmp_path / "pulsehook.db")
    (found,) = normalize("dependabot_alert", payload("dependabot_alert.created"))
    assert isinstance(found, Vulnerability)
    fact = dataclasses.replace(found, severity="critical")
    now = datetime(2026, 1, 31, 8, tzinfo=UTC)

    def evaluate(d: Tx) -> engine.Outcome:
        return engine.evaluate(
            d, ruleset, [fact], now=now, evaluator=Evaluator(), policy=engine.Policy()
        )

    db.transact(evaluate)
    (row,) = db.transact(lambda d: alert_store.for_page(d, firing=True, limit=10))
    assert row["severity"] == "critical"  # what the Alerts page shows: not the rule's "error"
    db.close()


def test_group_notice_has_context_and_a_short_subject() -> None:
    members = tuple(
        Member(LONG, f"org/svc{i}", "firing", "high" if i else "critical", "CI failed", None)
        for i in range(40)
    )
    message = render_group(Tally(members), kind="slack", key="g", alerts_url="https://p.example")
    assert len(message.subject) < 80 and message.subject.endswith(" in 40 repositories")
    assert "severity *critical*" in message.context and "40 alerts" in message.context
    assert "Severity: critical" in message.text and "Alerts: 40" in message.text
    section = slack.blocks(message)[0]["text"]["text"]
    assert section.count("[FIRING]") == 1  # the heading once, then the names


def test_digest_entries_carry_severity_and_ids() -> None:
    entry = {
        "repo": "o/r",
        "rule": "vulns",
        "state": "firing",
        "title": "t <!here>",
        "url": None,
        "severity": "critical",
        "fact": {"ghsa_id": "GHSA-c2qf-rxjj-qqgw", "cve_id": "CVE-2022-25883"},
    }
    message = render_digest("mail", "2026-02-01T09:00:00Z", [entry, entry | {"fact": None}])
    line = "    - firing [critical] (GHSA-c2qf-rxjj-qqgw, CVE-2022-25883): t <!here>"
    assert line in message.text.splitlines()
    assert "firing [critical]: t" in message.text  # the alert without a fact: severity only
    assert "firing [critical] (GHSA-c2qf-rxjj-qqgw, CVE-2022-25883): t &lt;!here&gt;" in (
        message.markdown
    )
    assert message.html is not None
    assert "[critical] (GHSA-c2qf-rxjj-qqgw, CVE-2022-25883): t &lt;!here&gt;" in message.html
    assert len(message.subject) < 80 and "due 2026-02-01 09:00 UTC" in message.context


def _pd_rules(tmp_path: Path, url: str) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "rules.toml").write_text(f"""
[channels.oncall]
kind = "pagerduty"
routing_key = "R0UTINGKEY0123456789abcdef012345"
events_url = "{url}"
""")
    return directory


def test_notify_test_on_pagerduty_resolves_what_it_triggered(tmp_path: Path) -> None:
    with receiver() as pd:
        directory = _pd_rules(tmp_path, f"{pd.url}/hook/pd")
        result = CliRunner().invoke(
            main, ["notify", "test", "oncall", "--rules-dir", str(directory)]
        )
        assert result.exit_code == 0, result.output
        assert "oncall (pagerduty): trigger ok, resolve ok — nothing left open" in result.output
        trigger, resolve = pd.delivered("pd")
    assert [trigger["event_action"], resolve["event_action"]] == ["trigger", "resolve"]
    assert trigger["dedup_key"] == resolve["dedup_key"] and trigger["dedup_key"]


def test_notify_test_on_pagerduty_says_when_the_incident_may_be_open(tmp_path: Path) -> None:
    with receiver() as pd:
        pd.script("pd", 200, 500)  # the trigger is taken, the resolve fails
        directory = _pd_rules(tmp_path, f"{pd.url}/hook/pd")
        result = CliRunner().invoke(
            main, ["notify", "test", "oncall", "--rules-dir", str(directory)]
        )
        (trigger,) = pd.delivered("pd")
    assert result.exit_code == 1
    assert "trigger ok, resolve FAILED: HTTP 500" in result.output
    assert f"the incident may be open: dedup key {trigger['dedup_key']}" in result.output
    assert "R0UTINGKEY" not in result.output
