"""The scan's errors carry GitHub's status: the CLI's token hint reads it, not the text."""

from __future__ import annotations

from pulsehook.cli.scan import statuses, token_hint
from pulsehook.github.api import Failure
from pulsehook.github.backfill import StoreLedger
from pulsehook.github.scan import scan

from .github_standin import standin
from .test_scan import Collector, client, run


def test_scan_errors_carry_the_status_github_answered(ledger: StoreLedger) -> None:
    async def scenario() -> None:
        with standin() as gh:
            gh.broken |= {"/repos/acme/web/readme"}
            gh.sites.pop("acme/legacy")
            async with client(gh)[0] as api:
                report = await scan(
                    api, org="acme", repos=["acme/ghost"], ledger=ledger, sink=Collector()
                )
            assert sorted((e.split(":")[0], e.status) for e in report.errors) == [
                ("acme/ghost", 404),
                ("acme/web", 500),
            ]
            assert statuses(report.errors) == {404, 500}

    run(scenario)


def test_the_token_hint_reads_the_status_never_the_text() -> None:
    quoting = Failure("acme/api: commits: KeyError: 'HTTP 401 on /repos/acme/api'")
    assert statuses([quoting]) == set() and token_hint([quoting], token=True) is None
    refused = Failure("acme/api: HTTP 401 on /repos/acme/api: Bad credentials", 401)
    assert token_hint([refused], token=True) == (
        "GitHub refused GITHUB_TOKEN (401): it is wrong, expired or revoked."
    )
    hidden = Failure("acme/secret: HTTP 404 on /repos/acme/secret: Not Found", 404)
    assert "no token was sent" in (token_hint([hidden], token=False) or "")
