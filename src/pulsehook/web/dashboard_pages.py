"""The dashboard's pages as data: each takes a read connection and the request's
view and returns its template's context (queries over the same store as the API)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from markupsafe import Markup

from ..alerts import silences
from ..clock import parse_iso
from ..store import alerts as alert_store
from ..store import dependencies as graph_store
from ..store import health, metrics, outbox, queries, redeliveries
from ..store import summary as summary_store
from ..store.db import Tx
from ..summary import items as summary_items
from ..summary.model import STATUSES as SUMMARY_STATUSES
from ..summary.model import anchor
from . import charts
from .dependencies import package_use

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


def _open_vulns(db: Tx, repo: str | None) -> list[dict[str, Any]]:
    """Open Dependabot alerts, worst first."""
    return metrics.vulnerabilities(
        db, severity=None, state="open", repo=repo, package=None, limit=100_000
    )


def overview(db: Tx, view: View) -> dict[str, Any]:
    firing = alert_store.for_page(db, firing=True, limit=50)
    return {
        "data": metrics.overview(db, view.now),
        "firing": firing,
        "recovery": redeliveries.overview(db),
        **_link_targets(db, firing),
    }


def repos(db: Tx, view: View) -> dict[str, Any]:
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


def _by_path_or_id(db: Tx, view: View) -> queries.RepoRef | None:
    """The repository of the path's name or, with ``?id=`` (two sharing a name), the
    one of that id if it has that name (any other id is a 404, not another page)."""
    full_name = f"{view.path['owner']}/{view.path['name']}"
    raw = view.query.get("id", "")
    if raw.isascii() and raw.isdigit() and len(raw) < 19:
        found = queries.repo_by_id(db, int(raw))
        return found if found is not None and found.full_name == full_name else None
    return queries.find_repo(db, full_name)


def repo(db: Tx, view: View) -> dict[str, Any] | None:
    found = _by_path_or_id(db, view)
    if found is None:
        return None
    name = found.full_name
    row = metrics.one_repo(db, found.id, view.now)  # by key: not every repository
    data = metrics.repo_metrics(db, found.id, days=TREND_DAYS, now=view.now)
    history = [(parse_iso(h["at"]), h["score"]) for h in data["history"]]
    title = f"Health of {name}, last {TREND_DAYS} days"
    return {
        "name": name,
        "repo_id": found.id,
        "row": None if row is None or row["details"]["deleted"] else row,
        "metrics": data,
        "chart": _svg(charts.line_chart(history, title=title, until=view.now)),
        "builds": metrics.builds(db, repo=name, branch=None, status=None, limit=15),
        "vulns": _open_vulns(db, name),
        "prs": queries.open_dependency_prs(db, name),
        "graph": None if row is None else row["details"]["dependency_graph"],
        "expected": [
            e
            for e in map(summary_items.described, summary_store.listing(db, repo=name, limit=200))
            if e["schedule"] or e["ignored"]
        ],
    }


def dependencies(db: Tx, view: View) -> dict[str, Any]:
    """Open alerts and pull requests; the packages of every dependency graph, most
    used first (``?q=`` a part of a name); with ``?package=``, who uses it."""
    vulns = _open_vulns(db, None)  # the template groups them by package
    severity = dict.fromkeys(SEVERITIES, 0) | Counter(v["severity"] for v in vulns)
    search = (view.query.get("q") or "").strip()[:300] or None
    package = (view.query.get("package") or "").strip()[:300] or None
    ecosystem = (view.query.get("ecosystem") or "").strip()[:50] or None
    packages, total = graph_store.packages(db, search=search, limit=PAGE_SIZE, offset=0)
    graphs, graph_states = graph_store.graph_listing(db, limit=PAGE_SIZE)
    return {
        "graphs": graphs,
        "graph_states": graph_states,
        "severity": severity,
        "vulns": vulns,
        "prs": queries.open_dependency_prs(db),
        "packages": packages,
        "packages_total": total,
        "q": search or "",
        "package": package,
        "users": None if package is None else package_use(db, package, ecosystem, 1000),
    }


def dependency_tree(db: Tx, view: View) -> dict[str, Any] | None:
    found = queries.find_repo(db, f"{view.path['owner']}/{view.path['name']}")
    if found is None:
        return None
    return {"name": found.full_name, "graph": graph_store.describe(db, found.id)}


def trends(db: Tx, view: View) -> dict[str, Any]:
    try:
        days = min(max(int(view.query.get("days", TREND_DAYS)), 1), 3650)
    except ValueError:
        days = TREND_DAYS
    # By id: two repositories may share a name (a rename, a case apart).
    series: dict[int, list[charts.Point]] = {}
    for row in health.history_since(db, view.now - timedelta(days=days)):
        series.setdefault(row["repo_id"], []).append((parse_iso(row["at"]), row["score"]))
    scores = health.current(db)
    # The current score is the one every other page shows (history gets a row only
    # when a score moves by 0.5, so its last row can lag): it ends each series, and
    # a repository without history in the period still appears with it.
    for row in scores:
        points = series.setdefault(row["repo_id"], [])
        at = parse_iso(row["computed_at"])
        if not points or points[-1][1] != row["score"] or points[-1][0] < at:
            points.append((at, row["score"]))
    daily = charts.daily_average({str(k): v for k, v in series.items()}, until=view.now.date())
    title = f"Ecosystem average health per day, last {days} days"
    folded = Counter(row["name"].lower() for row in scores)
    sparks = []
    for row in scores:
        points = series[row["repo_id"]]
        shared = folded[row["name"].lower()] > 1
        label = f"{row['name']} (id {row['repo_id']})" if shared else row["name"]
        sparks.append(
            {
                "name": row["name"],
                "id": row["repo_id"] if shared else None,
                "latest": row["score"],
                **metrics.score_facts(row["score"], row["components"]),
                "svg": _svg(charts.sparkline(points, title=label, until=view.now)),
            }
        )
    chart = _svg(charts.line_chart(daily, width=720, height=240, title=title))
    return {"days": days, "daily": daily, "sparks": sparks, "chart": chart}


def alerts(db: Tx, view: View) -> dict[str, Any]:
    """Alerts firing and recent (of one rule: ``?rule=``, where a grouped notice links),
    the latest notices with how many alerts each named, and the silences."""
    rule = view.query.get("rule") or None
    firing = alert_store.for_page(db, firing=True, limit=1000 if rule else 200, rule=rule)
    recent = alert_store.for_page(db, firing=False, limit=50, rule=rule)
    return {
        "rule": rule,
        "firing": firing,
        "recent": recent,
        "notices": outbox.listing(db, status=None, limit=20),
        "silences": silences.listing(db, view.now, view.tz),
        **_link_targets(db, [*firing, *recent]),
    }


def _link_targets(db: Tx, alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """What the alert tables may link: repositories pulsehook knows (a summary item's
    repository may be known only by its heartbeats: no page), and summary items by
    path to their row of the Summary page."""
    names = [a["repo"] for a in alerts if a.get("repo")]
    paths = {a["subject"] for a in alerts if a.get("subject")}
    items = summary_store.existing(db, paths)
    return {
        "known_repos": queries.known_names(db, names),
        "summary_paths": {path: anchor(path) for path in items},
    }


def summary(db: Tx, view: View) -> dict[str, Any]:
    """The summary's items, ERROR first, then MISSING, then OK (``?status=`` one of
    them), each with an anchor, its times, schedule and links."""
    wanted = view.query.get("status", "").upper()
    status = wanted if wanted in SUMMARY_STATUSES else None
    rows = [summary_items.described(r) for r in summary_store.listing(db, status=status)]
    counts = metrics.overview_statuses(db)
    known = queries.known_names(db, [r["repo"] for r in rows if r["repo"]])
    groups: dict[str, list[dict[str, Any]]] = {s: [] for s in SUMMARY_STATUSES}
    for r in rows:
        r["anchor"] = anchor(r["path"])
        groups.setdefault(r["status"] or "OK", []).append(r)
    return {
        "only": status,  # not "status": render() takes that for the HTTP status
        "groups": groups,
        "counts": counts,
        "known_repos": known,
    }
