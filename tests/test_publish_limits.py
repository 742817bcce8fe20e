"""Publishing reads GitHub's limits as every other request does: through the one client.

What the contents API answers about rate limits (``Retry-After`` as seconds or a date,
``x-ratelimit-reset``, secondary limits) becomes the PublishResult's ``retry_after``;
the client neither retries nor waits, the Publisher's loop does.
"""

from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime

from pulsehook.clock import FrozenClock

from .test_publish import FILES, FakeGitHub, github, publish, run

__all__ = ["github"]  # the fixture, used by name


def test_retry_after_as_an_http_date(github: FakeGitHub) -> None:
    async def scenario() -> None:
        clock = FrozenClock()
        when = format_datetime(clock.now() + timedelta(seconds=90), usegmt=True)
        github.fail(403, headers={"retry-after": when})
        result = await publish(github, FILES, clock=clock)
        assert (result.ok, result.status, result.retry_after) == (False, 403, 90.0)
        assert result.error is not None and "rate limited" in result.error

    run(scenario)


def test_a_limit_without_a_time_waits_github_s_minute(github: FakeGitHub) -> None:
    async def scenario() -> None:
        github.fail(429)  # no retry-after, no reset: GitHub asks for at least a minute
        result = await publish(github, FILES, clock=FrozenClock())
        assert (result.status, result.retry_after) == (429, 60.0)

    run(scenario)
