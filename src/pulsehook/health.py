"""Repository health, 0–100: a pure function of what pulsehook knows and ``now``.

No I/O and no clock here: the caller gathers the data and passes the time, so a
score can be recomputed (and tested) exactly. A component without data is
*inconclusive*: it is left out and its weight spread over the others, because
"we don't know" must never read as "bad".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from .clock import iso
from .facts import FAILED_CONCLUSIONS, PASSED_CONCLUSIONS

FORMULA_VERSION: Final = 1
# Published weights; they sum to 100. Bump FORMULA_VERSION when changing them.
WEIGHTS: Final[dict[str, int]] = {
    "build": 25,
    "coverage": 20,
    "dependencies": 20,
    "documentation": 15,
    "activity": 10,
    "security": 10,
}
MAX_BUILDS: Final = 10
# A score resting on less than this share (percent) of the weight is provisional:
# shown grey with the word, never green, because most of it is not known.
PROVISIONAL_BELOW: Final = 50
# Penalty per open Dependabot alert, by severity; unknown severities are listed
# but cost nothing (we would only be guessing at their weight).
ALERT_PENALTY: Final[dict[str, int]] = {"critical": 25, "high": 15, "medium": 8, "low": 3}
OUTDATED_PENALTY: Final = 5
HIGH_PENALTY: Final = 20
SECURITY_FLOOR: Final = 40
# (age at most, score) from freshest to stalest; anything older scores 0.
ACTIVITY_STEPS: Final = (
    (timedelta(days=30), 100.0),
    (timedelta(days=90), 60.0),
    (timedelta(days=365), 20.0),
)


@dataclass(frozen=True)
class RepoInputs:
    name: str
    archived: bool = False
    builds: tuple[str, ...] = ()  # conclusions, newest first
    coverage: float | None = None
    open_alerts: Mapping[str, int] = field(default_factory=dict)
    open_dependency_prs: int = 0
    dependabot_known: bool = False
    readme: bool | None = None
    api_docs: bool | None = None
    last_commit_at: datetime | None = None
    last_issue_activity_at: datetime | None = None


@dataclass(frozen=True)
class Component:
    name: str
    score: float | None  # None: inconclusive, left out of the total
    weight: int
    reason: str
    inputs: dict[str, Any]


@dataclass(frozen=True)
class Coverage:
    """How much of a score rests on data: components with data of all, and their
    weight of the total weight (percent, as the published weights sum to 100)."""

    components: int
    of: int
    weight: float
    total_weight: float = 100.0

    @property
    def share(self) -> float:
        """The weight with data as a percentage of all the weight (0 when none)."""
        return 100.0 * self.weight / self.total_weight if self.total_weight > 0 else 0.0

    @property
    def provisional(self) -> bool:
        """Whether a score would rest on less than PROVISIONAL_BELOW of the weight."""
        return self.share < PROVISIONAL_BELOW

    def as_dict(self) -> dict[str, Any]:
        weight = round(self.share, 1)
        return {
            "components": self.components,
            "of": self.of,
            "weight": int(weight) if weight.is_integer() else weight,
        }


def _cover(weights: list[tuple[float, bool]]) -> Coverage:
    """Coverage of components given as (weight, has data)."""
    return Coverage(
        components=sum(known for _, known in weights),
        of=len(weights),
        weight=sum(w for w, known in weights if known),
        total_weight=sum(w for w, _ in weights),
    )


def coverage(components: tuple[Component, ...]) -> Coverage:
    return _cover([(float(c.weight), c.score is not None) for c in components])


def stored_coverage(components: Mapping[str, Mapping[str, Any]]) -> Coverage | None:
    """The coverage of a score kept as ``as_dict`` wrote it (the health table's JSON),
    by the weights stored with it; None when nothing was stored."""
    if not components:
        return None
    return _cover(
        [(float(c.get("weight") or 0), c.get("score") is not None) for c in components.values()]
    )


def provisional(value: float | None, cover: Coverage | None) -> bool:
    """A score that exists but rests on less than half the weight. No score is not
    provisional: it is no score."""
    return value is not None and cover is not None and cover.provisional


@dataclass(frozen=True)
class Score:
    score: float | None  # None when every component is inconclusive
    components: tuple[Component, ...]
    warnings: tuple[str, ...]
    formula_version: int = FORMULA_VERSION

    @property
    def coverage(self) -> Coverage:
        return coverage(self.components)

    @property
    def provisional(self) -> bool:
        return provisional(self.score, self.coverage)


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def _utc(when: datetime) -> datetime:
    # Naive times are taken as UTC (what pulsehook stores), never as local time.
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def _component(name: str, score: float | None, reason: str, inputs: dict[str, Any]) -> Component:
    return Component(name, score, WEIGHTS[name], reason, inputs)


def _build(r: RepoInputs) -> Component:
    """Pass rate over the last 10 completed runs.

    Only conclusions that pass or fail the code are counted (``facts.py``): the
    neutral ones (cancelled, skipped ...) and any unknown one neither pass nor
    fail it.
    """
    runs = r.builds[:MAX_BUILDS]
    passed = sum(c in PASSED_CONCLUSIONS for c in runs)
    failed = sum(c in FAILED_CONCLUSIONS for c in runs)
    counted = passed + failed
    inputs = {"passed": passed, "failed": failed, "ignored": len(runs) - counted}
    if counted == 0:
        return _component("build", None, f"No build data for {r.name}", inputs)
    if failed:
        reason = f"{failed} of {_plural(counted, 'build')} failed"
    else:
        reason = f"all {counted} builds passed" if counted > 1 else "1 build passed"
    return _component("build", 100.0 * passed / counted, reason, inputs)


def _coverage(r: RepoInputs) -> Component:
    cov = r.coverage
    if cov is None or not math.isfinite(cov):  # NaN or ±inf is no measurement either
        return _component("coverage", None, f"No coverage data for {r.name}", {"coverage": None})
    value = min(max(float(cov), 0.0), 100.0)
    return _component("coverage", value, f"coverage {value:g}%", {"coverage": cov})


def _alerts(r: RepoInputs) -> dict[str, int]:
    # Sorted, negatives dropped: the same inputs always give the same reason.
    return {k: n for k, n in sorted(r.open_alerts.items()) if n > 0}


def _dependencies(r: RepoInputs) -> Component:
    alerts, prs = _alerts(r), max(r.open_dependency_prs, 0)
    inputs: dict[str, Any] = {"open_alerts": alerts, "open_dependency_prs": prs}
    if not r.dependabot_known:
        return _component("dependencies", None, f"No dependency data for {r.name}", inputs)
    penalty = sum(ALERT_PENALTY.get(k, 0) * n for k, n in alerts.items()) + OUTDATED_PENALTY * prs
    order = [*ALERT_PENALTY, *sorted(set(alerts) - set(ALERT_PENALTY))]
    detail = ", ".join(f"{alerts[k]} {k}" for k in order if k in alerts)
    total = sum(alerts.values())
    said = f"{_plural(total, 'open alert')} ({detail})" if total else "no open alerts"
    outdated = "no outdated dependencies"
    if prs:
        outdated = _plural(prs, "outdated dependency", "outdated dependencies")
    reason = f"{said}, {outdated}"
    return _component("dependencies", max(0.0, 100.0 - penalty), reason, inputs)


def _documentation(r: RepoInputs) -> Component:
    """README 60 + API docs 40.

    Both unknown is inconclusive. If only one is unknown it counts as absent:
    the repository has been scanned, and what the scan did not find is missing.
    """
    inputs = {"readme": r.readme, "api_docs": r.api_docs}
    if r.readme is None and r.api_docs is None:
        return _component("documentation", None, f"No documentation data for {r.name}", inputs)
    value = 60.0 * bool(r.readme) + 40.0 * bool(r.api_docs)
    reason = (
        f"README {'present' if r.readme else 'missing'}, "
        f"API docs {'present' if r.api_docs else 'missing'}"
    )
    return _component("documentation", value, reason, inputs)


def _activity(r: RepoInputs, now: datetime) -> Component:
    dates = {"commit": r.last_commit_at, "issue activity": r.last_issue_activity_at}
    seen = [(_utc(t), what) for what, t in dates.items() if t is not None]
    inputs: dict[str, Any] = {
        "archived": r.archived,
        "last_commit_at": iso(_utc(r.last_commit_at)) if r.last_commit_at else None,
        "last_issue_activity_at": (
            iso(_utc(r.last_issue_activity_at)) if r.last_issue_activity_at else None
        ),
    }
    if r.archived:
        return _component("activity", 0.0, "archived: not maintained", inputs)
    if not seen:
        return _component("activity", None, f"No activity data for {r.name}", inputs)
    # Most recent wins; a tie goes to the commit (listed first, max is stable).
    when, what = max(seen, key=lambda s: s[0])
    age = max(_utc(now) - when, timedelta(0))  # clock skew: the future is "now"
    value = next((s for limit, s in ACTIVITY_STEPS if age <= limit), 0.0)
    return _component("activity", value, f"last {what} {_plural(age.days, 'day')} ago", inputs)


def _security(r: RepoInputs) -> Component:
    alerts = _alerts(r)
    critical, high = alerts.get("critical", 0), alerts.get("high", 0)
    inputs = {"critical": critical, "high": high}
    if not r.dependabot_known:
        return _component("security", None, f"No security data for {r.name}", inputs)
    if critical:  # the cap: any open critical zeroes security, whatever else is true
        vuln = _plural(critical, "open critical vulnerability", "open critical vulnerabilities")
        return _component("security", 0.0, vuln, inputs)
    reason = "no open critical vulnerability" + (f", {high} open high" if high else "")
    value = max(float(SECURITY_FLOOR), 100.0 - HIGH_PENALTY * high)
    return _component("security", value, reason, inputs)


def effective_weights(components: tuple[Component, ...]) -> dict[str, float]:
    """Each component's share of the total in percent; inconclusive ones get 0."""
    known = sum(c.weight for c in components if c.score is not None)
    return {
        c.name: 100.0 * c.weight / known if c.score is not None and known else 0.0
        for c in components
    }


def score(inputs: RepoInputs, now: datetime) -> Score:
    """The health of one repository at ``now``."""
    components = (
        _build(inputs),
        _coverage(inputs),
        _dependencies(inputs),
        _documentation(inputs),
        _activity(inputs, now),
        _security(inputs),
    )
    known = [c for c in components if c.score is not None]
    warnings = tuple(c.reason for c in components if c.score is None)
    if not known:
        return Score(None, components, warnings, FORMULA_VERSION)
    # Weighted mean over conclusive components = spreading the missing weight
    # proportionally; clamped against float drift before rounding.
    total = sum(c.weight * (c.score or 0.0) for c in known) / sum(c.weight for c in known)
    return Score(round(min(max(total, 0.0), 100.0), 1), components, warnings, FORMULA_VERSION)


def changed(old: float | None, new: float | None, threshold: float = 0.5) -> bool:
    """Whether a score moved enough to be worth a ``health`` fact.

    Appearing or vanishing (None on one side) always counts. The difference is
    rounded so float noise (70.6 - 70.1 = 0.4999…) does not hide a real change.
    """
    if old is None or new is None:
        return (old is None) != (new is None)
    return round(abs(new - old), 6) >= threshold


def as_dict(result: Score) -> dict[str, dict[str, Any]]:
    """Plain data for JSON/API: component name → its score, weights, reason, inputs."""
    shares = effective_weights(result.components)
    return {
        c.name: {
            "score": c.score,
            "weight": c.weight,
            "effective_weight": shares[c.name],
            "reason": c.reason,
            "inputs": dict(c.inputs),
        }
        for c in result.components
    }
