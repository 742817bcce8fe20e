"""How a health score and a build state are graded for people: one place for the
thresholds, used by the dashboard's templates and by the badges.

A grade is ``good``, ``fair``, ``poor`` or ``none`` (nothing to grade); the
dashboard writes it as a CSS class, a badge as a colour.
"""

from __future__ import annotations

from typing import Literal

Grade = Literal["good", "fair", "poor", "none"]

GOOD_SCORE = 80.0  # from here a score is good
FAIR_SCORE = 50.0  # from here, and below GOOD_SCORE, fair; below it, poor
FAILED_BUILDS = frozenset({"failure", "timed_out", "startup_failure"})


def score_grade(value: float | None, provisional: bool = False) -> Grade:
    """A health score's grade (0-100; None: not scored yet). A provisional score
    (resting on less than half the weight) is graded ``none``: never green."""
    if value is None or provisional:
        return "none"
    if value >= GOOD_SCORE:
        return "good"
    return "fair" if value >= FAIR_SCORE else "poor"


def score_text(value: float, provisional: bool = False) -> str:
    """A health score as it is shown: one decimal, and the word when provisional."""
    return f"{value:.1f} provisional" if provisional else f"{value:.1f}"


def build_grade(state: str | None) -> Grade:
    """A build state's grade (None: no build seen yet)."""
    if state is None:
        return "none"
    if state == "success":
        return "good"
    return "poor" if state in FAILED_BUILDS else "fair"
