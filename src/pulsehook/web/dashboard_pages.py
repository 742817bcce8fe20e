"""The dashboard's pages as data: each takes a read connection and the request's
view and returns its template's context (queries over the same store as the API)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from markupsafe import Markup
from sqlite_utils import Database

from ..alerts import silences
from ..clock import iso, parse_iso
from ..store import metrics, outbox, queries
from . import charts

SEVERITIES = ("critical", "high", "medium", "low")
TREND_DAYS = 90
PAGE_SIZE = 100  # rows of the repositories table per page
# Sortable columns of /repos (sorted in SQL: store/queries.TABLE_SORTS): label, and
# the order of a first click (worst first).
SORTS: dict[str, tuple[str, str]] = {
    "name": ("Repository", "asc"),
    "score": ("Score", "asc"),
    "build": ("Build", "asc"),
    "coverage": ("Coverage", "asc"),
    "vulns": ("Vulnerabilities", "desc"),
    "last_commit": ("Last commit", "desc"),
}


@dataclass(frozen=True)
class View:
    """What a page's query gets: the request's parameters and the time."""

    query: Mapping[str, str]
    path: Mapping[str, Any]
    now: datetime
    tz: str


def _svg(markup: str) -> Markup:
    return Markup(markup)  # noqa: S704 - charts.py escapes every text it writes


SEVERITY_RANK = (
    "CASE severity WHEN 'critical' THEN 0 WHEN 'error' THEN 1 WHEN 'warning' THEN 2 ELSE 3 END"
)
FIRING = ("state = 'firing'", f"{SEVERITY_RANK}, last_seen_at DESC")
RECENT = ("1", "last_seen_at DESC")


def _alerts(
    db: Database, which: tuple[str, str], limit: int, rule: str | None = None
) -> list[dict[str, Any]]:
    where, order = which
    rows = list(
        db.query(
            "SELECT rule, repo, subject, state, severity, fact, started_at, last_seen_at,"
            f" resolved_at, occurrences, silenced FROM alerts WHERE {where}"
            f" AND (? IS NULL OR rule = ?) ORDER BY {order} LIMIT ?",
            (rule, rule, limit),
        )
    )
    for row in rows:
        fact = json.loads(row.pop("fact"))  # written by pulsehook itself: always JSON
        row["url"] = fact.get("url") if isinstance(fact, dict) else None
    return rows


def _dependency_prs(db: Database, repo: str | None) -> list[dict[str, Any]]:
    """Open Dependabot pull requests: what is outdated."""
    return list(
        db.query(
            "SELECT r.full_name AS repo, d.number, d.title, d.package, d.from_version,"
            " d.to_version, d.url, d.opened_at FROM dependency_prs d"
            " JOIN repositories r ON r.id = d.repo_id WHERE d.state = 'open' AND r.deleted = 0"
            " AND (? IS NULL OR r.full_name = ?) ORDER BY r.full_name, d.package, d.number",
            (repo, repo),
        )
    )


def _open_vulns(db: Database, repo: str | None) -> list[dict[str, Any]]:
    """Open Dependabot alerts, worst first."""
    return metrics.vulnerabilities(
        db, severity=None, state="open", repo=repo, package=None, limit=100_000
    )


def overview(db: Database, view: View) -> dict[str, Any]:
    firing = _alerts(db, FIRING, 50)
    return {"data": metrics.overview(db, view.now), "firing": firing}


def repos(db: Database, view: View) -> dict[str, Any]:
    key = view.query.get("sort", "score")
    key = key if key in SORTS else "score"  # an unknown column falls back, never an error
    order = view.query.get("order", SORTS[key][1])
    order = order if order in ("asc", "desc") else SORTS[key][1]
    search = (view.query.get("q") or "").strip()[:100] or None
    raw_page = view.query.get("page", "1")
    page = int(raw_page) if raw_page.isascii() and raw_page.isdigit() else 1
    page = max(1, min(page, 100_000))
    columns = [(k, label, first) for k, (label, first) in SORTS.items()]
    rows, total = metrics.table_page(
        db,
        view.now,
        column=key,
        descending=order == "desc",
        search=search,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )
    pages = max(1, -(-total // PAGE_SIZE))
    return {
        "rows": rows,
        "columns": columns,
        "sort": key,
        "order": order,
        "q": search or "",
        "total": total,
        "page": page,
        "pages": pages,
    }


def repo(db: Database, view: View) -> dict[str, Any] | None:
    found = queries.find_repo(db, f"{view.path['owner']}/{view.path['name']}")
    if found is None:
        return None
    name = found.full_name
    row = metrics.one_repo(db, found.id, view.now)  # by key: not every repository
    data = metrics.repo_metrics(db, found.id, days=TREND_DAYS, now=view.now)
    history = [(parse_iso(h["at"]), h["score"]) for h in data["history"]]
    title = f"Health of {name}, last {TREND_DAYS} days"
    return {
        "name": name,
        "row": None if row is None or row["details"]["deleted"] else row,
        "metrics": data,
        "chart": _svg(charts.line_chart(history, title=title)),
        "builds": metrics.builds(db, repo=name, branch=None, status=None, limit=15),
        "vulns": _open_vulns(db, name),
        "prs": _dependency_prs(db, name),
    }


def dependencies(db: Database, view: View) -> dict[str, Any]:
    vulns = _open_vulns(db, None)  # the template groups them by package
    severity = dict.fromkeys(SEVERITIES, 0) | Counter(v["severity"] for v in vulns)
    return {"severity": severity, "vulns": vulns, "prs": _dependency_prs(db, None)}


def trends(db: Database, view: View) -> dict[str, Any]:
    try:
        days = min(max(int(view.query.get("days", TREND_DAYS)), 1), 3650)
    except ValueError:
        days = TREND_DAYS
    series: dict[str, list[charts.Point]] = {}
    for row in db.query(
        "SELECT r.full_name AS name, h.at, h.score FROM health_history h"
        " JOIN repositories r ON r.id = h.repo_id WHERE r.deleted = 0 AND h.at >= ?"
        " ORDER BY r.full_name, h.at, h.id",
        (iso(view.now - timedelta(days=days)),),
    ):
        series.setdefault(row["name"], []).append((parse_iso(row["at"]), row["score"]))
    daily = charts.daily_average(series, until=view.now.date())
    title = f"Ecosystem average health per day, last {days} days"
    sparks = [
        {"name": name, "latest": points[-1][1], "svg": _svg(charts.sparkline(points, title=name))}
        for name, points in series.items()
    ]
    chart = _svg(charts.line_chart(daily, width=720, height=240, title=title))
    return {"days": days, "daily": daily, "sparks": sparks, "chart": chart}


def alerts(db: Database, view: View) -> dict[str, Any]:
    """Alerts firing and recent (of one rule: ``?rule=``, where a grouped notice links),
    the latest notices with how many alerts each named, and the silences."""
    rule = view.query.get("rule") or None
    return {
        "rule": rule,
        "firing": _alerts(db, FIRING, 1000 if rule else 200, rule),
        "recent": _alerts(db, RECENT, 50, rule),
        "notices": outbox.listing(db, status=None, limit=20),
        "silences": silences.listing(db, view.now, view.tz),
    }
