"""What a rule set is, once loaded and validated."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ..notify.base import ChannelConfig

FREQUENCIES = ("immediate", "hourly_digest", "daily_digest", "weekly_digest")
# Named digests as cron expressions (in the configured timezone).
DIGEST_CRONS = {
    "hourly_digest": "0 * * * *",
    "daily_digest": "0 8 * * *",
    "weekly_digest": "0 8 * * mon",
}
SEVERITIES = ("critical", "error", "warning", "info")
# After a group's first notice, what follows inside this window is gathered into one.
GROUP_WINDOW = timedelta(seconds=30)


@dataclass(frozen=True)
class Rule:
    name: str
    condition: str
    channels: tuple[str, ...]
    frequency: str  # "immediate", a named digest, or a cron expression
    fact: str  # the fact kind the condition speaks of
    tree: ast.Expression = field(compare=False, repr=False)  # parsed once, at load
    fields: frozenset[str] = frozenset()  # fact fields the condition reads
    guards: tuple[tuple[str, frozenset[Any]], ...] = ()  # pre-checks, see rules/guards.py
    severity: str = "error"
    repeat_interval: timedelta | None = None  # None: never repeat while firing
    notify_resolved: bool = True
    message: str | None = None  # a Jinja2 template (sandboxed) over the fact
    repos: tuple[str, ...] = ()  # fnmatch patterns on "owner/name"; empty = all
    exclude_repos: tuple[str, ...] = ()
    source: str = ""  # the file it came from
    group: bool = True  # False: one notice per alert, however many fire together
    group_by: tuple[str, ...] = ()  # fact fields splitting the rule's alerts into groups
    group_window: timedelta = GROUP_WINDOW

    @property
    def grouped(self) -> bool:
        """Whether its notices are grouped (digests gather by schedule instead)."""
        return self.group and not self.is_digest

    @property
    def is_digest(self) -> bool:
        return self.frequency != "immediate"

    @property
    def cron(self) -> str | None:
        if self.frequency == "immediate":
            return None
        return DIGEST_CRONS.get(self.frequency, self.frequency)


@dataclass(frozen=True)
class Expectation:
    """Something that must report on a schedule: a workflow, or a heartbeat path."""

    owner: str
    repo: str  # the repository name
    workflow: str | None  # a workflow of the repository ...
    path: str | None  # ... or a heartbeat path, as a pulseox spec has it
    # A duration, or a cron string; None: a workflow's own file says (an override).
    schedule: timedelta | str | None
    grace: timedelta | None = None  # None: none given (a workflow file's default holds)
    note: str | None = None
    source: str = ""
    ignore: bool = False  # never MISSING, even when a workflow file schedules it
    channels: tuple[str, ...] = ()  # where its spec notices go instead of the rules' own

    @property
    def item_path(self) -> str:
        if self.workflow is not None:
            return f"{self.owner}/{self.repo}/actions/{self.workflow}"
        return f"{self.owner}/{self.repo}/{self.path}"


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...] = ()
    channels: dict[str, ChannelConfig] = field(default_factory=dict)
    # Channels rules name that cannot send yet (missing ${VAR}, no SMTP host...): why.
    unconfigured: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    expectations: tuple[Expectation, ...] = ()

    def by_fact(self, fact: str) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.fact == fact)

    def rule(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)
