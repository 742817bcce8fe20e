"""Errors GitHub answered carry its HTTP status as data, beside their text."""

from __future__ import annotations

from datetime import timedelta

from pulsehook.github.api import Failure, GitHubError, failure
from pulsehook.github.redeliver import HookRef

from .github_standin import standin
from .test_scan import HOOKS, NOW, Known, recover_from, run


def test_a_failure_is_its_text_with_the_status_beside_it() -> None:
    answered = failure("acme/api: readme", GitHubError("HTTP 500 on /repos/acme/api", status=500))
    assert answered == "acme/api: readme: HTTP 500 on /repos/acme/api"
    assert isinstance(answered, str) and answered.status == 500
    # Only GitHub's answer gives a status: text that looks like one is not read.
    quoting = failure("acme/api: commits", KeyError("HTTP 404 on /repos/acme/api"))
    assert quoting.status is None
    assert Failure("no answer").status is None


def test_recovery_errors_carry_the_status_github_answered() -> None:
    async def scenario() -> None:
        with standin() as gh:
            gh.refuse.add(2002)
            hooks = [*HOOKS, HookRef(99, "acme", "api")]
            report = await recover_from(gh, Known(), hooks=hooks, since=NOW - timedelta(days=10))
            assert [e.status for e in report.errors] == [404, 422]

    run(scenario)
