"""Errors GitHub answered carry its HTTP status as data, beside their text."""

from __future__ import annotations

from pulsehook.github.api import Failure, GitHubError, failure


def test_a_failure_is_its_text_with_the_status_beside_it() -> None:
    answered = failure("acme/api: readme", GitHubError("HTTP 500 on /repos/acme/api", status=500))
    assert answered == "acme/api: readme: HTTP 500 on /repos/acme/api"
    assert isinstance(answered, str) and answered.status == 500
    # Only GitHub's answer gives a status: text that looks like one is not read.
    quoting = failure("acme/api: commits", KeyError("HTTP 404 on /repos/acme/api"))
    assert quoting.status is None
    assert Failure("no answer").status is None
