"""The web dashboard: server-rendered HTML over the same read-side queries as the API.

Pages: ``/`` overview, ``/repos`` (sortable), ``/repos/{owner}/{name}``, ``/dependencies``,
``/trends``, ``/alerts``. No JavaScript and nothing fetched from elsewhere: the CSS is
inline in templates/base.html, charts are inline SVG (charts.py). Pages reload every 60 s.

Access. Without ``PULSEHOOK_API_TOKEN`` the dashboard is open, like the API. With it,
scripts send ``Authorization: Bearer <token>`` as for the API, and a person opens any
page once as ``/?token=<token>``: the answer is a redirect to the same page without the
token (it leaves the address bar) that sets the HttpOnly, SameSite=Lax cookie
``pulsehook_dashboard``. The cookie holds an HMAC of the token, not the token, so it
opens no API access and stops working when the token changes. Anything else: a 401 page.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from sqlite_utils import Database
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from ..alerts import silences
from ..clock import iso
from ..settings import Settings
from ..store import metrics
from . import charts
from .auth import require_token
from .services import services

Endpoint = Callable[[Request], Awaitable[Response]]
COOKIE = "pulsehook_dashboard"
COOKIE_MAX_AGE = 30 * 24 * 3600
REFRESH_SECONDS = 60
TREND_DAYS = 90
SEVERITIES = ("critical", "high", "medium", "low")
# The browser itself refuses anything from elsewhere, whatever a template says.
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'"
    " data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
NAV = (
    ("overview", "/", "Overview"),
    ("repos", "/repos", "Repositories"),
    ("dependencies", "/dependencies", "Dependencies"),
    ("trends", "/trends", "Trends"),
    ("alerts", "/alerts", "Alerts"),
)
BUILD_RANK = {"failure": 0, "success": 2}  # anything else (cancelled...) in between
# Sortable columns of /repos: label, value, and the order of a first click (worst first).
SORTS: dict[str, tuple[str, Callable[[dict[str, Any]], Any], str]] = {
    "name": ("Repository", lambda r: r["name"].lower(), "asc"),
    "score": ("Score", lambda r: r["health_score"], "asc"),
    "build": (
        "Build",
        lambda r: (s := r["metrics"]["build_status"]) and BUILD_RANK.get(s, 1),
        "asc",
    ),
    "coverage": ("Coverage", lambda r: r["metrics"]["coverage"], "asc"),
    "vulns": ("Vulnerabilities", lambda r: r["metrics"]["dependencies"]["vulnerable"], "desc"),
    "last_commit": ("Last commit", lambda r: r["metrics"]["last_commit"], "desc"),
}


@functools.cache
def environment() -> Environment:
    # Formatting helpers are macros in templates/_macros.html.
    return Environment(
        loader=PackageLoader("pulsehook", "web/templates"), autoescape=select_autoescape()
    )


def render(
    request: Request,
    template: str,
    *,
    status: int = 200,
    refresh: bool = True,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    root, seconds = request.scope.get("root_path", ""), REFRESH_SECONDS if refresh else None
    page = environment().get_template(template)
    html = page.render(root=root, path=request.url.path, nav=NAV, refresh=seconds, **context)
    return HTMLResponse(html, status_code=status, headers=HEADERS | (headers or {}))


def _session(settings: Settings) -> str:
    assert settings.api_token is not None
    key = settings.api_token.get_secret_value().encode()
    return hmac.new(key, b"pulsehook dashboard session", hashlib.sha256).hexdigest()


def _gate(request: Request, settings: Settings) -> Response | None:
    """None when the request may see the dashboard, else the answer (see the module doc)."""
    if settings.api_token is None:
        return None
    given = request.query_params.get("token")
    if given is not None:
        expected = settings.api_token.get_secret_value().encode()
        if not hmac.compare_digest(given.encode(), expected):
            return _denied(request, "That token is not the right one.")
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
        response = RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
        response.set_cookie(
            COOKIE,
            _session(settings),
            max_age=COOKIE_MAX_AGE,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )
        return response
    if "authorization" in request.headers:
        try:
            require_token(request, settings)
        except HTTPException:
            return _denied(request, "The Authorization header has the wrong token.")
        return None
    if hmac.compare_digest(request.cookies.get(COOKIE, "").encode(), _session(settings).encode()):
        return None
    return _denied(request, "This dashboard needs the API token.")


def _denied(request: Request, why: str) -> HTMLResponse:
    return render(
        request,
        "error.html",
        status=401,
        refresh=False,
        headers={"WWW-Authenticate": 'Bearer realm="pulsehook"'},
        heading="Sign-in needed",
        message=why,
        login=True,
    )


@dataclass(frozen=True)
class View:
    """What a page's query gets: the request's parameters and the time."""

    query: Mapping[str, str]
    path: Mapping[str, Any]
    now: datetime
    tz: str


Build = Callable[[Database, View], "dict[str, Any] | None"]


def page(template: str, active: str) -> Callable[[Build], Endpoint]:
    """A dashboard page behind the gate. ``build`` runs on a read connection and returns
    the template's context, or None for a 404 (only a repository page can miss)."""

    def wrap(build: Build) -> Endpoint:
        @functools.wraps(build)
        async def handle(request: Request) -> Response:
            svc = services(request)
            denied = _gate(request, svc.settings)
            if denied is not None:
                return denied
            now = svc.clock.now()
            view = View(request.query_params, request.path_params, now, svc.settings.timezone)
            context = await svc.readers.run(lambda db: build(db, view))
            if context is None:
                name = "/".join(str(v) for v in request.path_params.values())
                context = {"heading": "Repository not found", "missing": name}
                return render(request, "error.html", status=404, active=active, now=now, **context)
            return render(request, template, active=active, now=now, **context)

        return handle

    return wrap


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _svg(markup: str) -> Markup:
    return Markup(markup)  # noqa: S704 - charts.py escapes every text it writes


FIRING = (
    "WHERE state = 'firing' ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'error' THEN 1"
    " WHEN 'warning' THEN 2 ELSE 3 END, last_seen_at DESC"
)
RECENT = "ORDER BY last_seen_at DESC"


def _alerts(db: Database, clause: str, limit: int) -> list[dict[str, Any]]:
    rows = list(
        db.query(
            "SELECT rule, repo, subject, state, severity, fact, started_at, last_seen_at,"
            f" resolved_at, occurrences, silenced FROM alerts {clause} LIMIT ?",
            (limit,),
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


@page("overview.html", "overview")
def overview(db: Database, view: View) -> dict[str, Any]:
    firing = _alerts(db, FIRING, 50)
    return {"data": metrics.overview(db, view.now), "firing": firing}


def sort_rows(rows: list[dict[str, Any]], key: str, order: str) -> list[dict[str, Any]]:
    """Sorted by one column; rows without a value always last, ties by name."""
    value = SORTS[key][1]
    by_name = sorted(rows, key=lambda r: r["name"].lower())
    known = [r for r in by_name if value(r) is not None]
    missing = [r for r in by_name if value(r) is None]
    # sorted() is stable with reverse=True too, so ties keep the name order.
    return sorted(known, key=value, reverse=order == "desc") + missing


@page("repos.html", "repos")
def repos(db: Database, view: View) -> dict[str, Any]:
    key = view.query.get("sort", "score")
    key = key if key in SORTS else "score"  # an unknown column falls back, never an error
    order = view.query.get("order", SORTS[key][2])
    order = order if order in ("asc", "desc") else SORTS[key][2]
    columns = [(k, label, first) for k, (label, _, first) in SORTS.items()]
    rows = sort_rows(metrics.all_repos(db, view.now), key, order)
    return {"rows": rows, "columns": columns, "sort": key, "order": order}


@page("repo.html", "repos")
def repo(db: Database, view: View) -> dict[str, Any] | None:
    found = metrics.find_repo(db, f"{view.path['owner']}/{view.path['name']}")
    if found is None:
        return None
    name = found["full_name"]
    data = metrics.repo_metrics(db, found["id"], days=TREND_DAYS, now=view.now)
    history = [(_parse(h["at"]), h["score"]) for h in data["history"]]
    title = f"Health of {name}, last {TREND_DAYS} days"
    return {
        "name": name,
        "row": next((r for r in metrics.all_repos(db, view.now) if r["name"] == name), None),
        "metrics": data,
        "chart": _svg(charts.line_chart(history, title=title)),
        "builds": metrics.builds(db, repo=name, branch=None, status=None, limit=15),
        "vulns": _open_vulns(db, name),
        "prs": _dependency_prs(db, name),
    }


@page("dependencies.html", "dependencies")
def dependencies(db: Database, view: View) -> dict[str, Any]:
    vulns = _open_vulns(db, None)  # the template groups them by package
    severity = dict.fromkeys(SEVERITIES, 0) | Counter(v["severity"] for v in vulns)
    return {"severity": severity, "vulns": vulns, "prs": _dependency_prs(db, None)}


@page("trends.html", "trends")
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
        series.setdefault(row["name"], []).append((_parse(row["at"]), row["score"]))
    daily = charts.daily_average(series, until=view.now.date())
    title = f"Ecosystem average health per day, last {days} days"
    sparks = [
        {"name": name, "latest": points[-1][1], "svg": _svg(charts.sparkline(points, title=name))}
        for name, points in series.items()
    ]
    chart = _svg(charts.line_chart(daily, width=720, height=240, title=title))
    return {"days": days, "daily": daily, "sparks": sparks, "chart": chart}


@page("alerts.html", "alerts")
def alerts(db: Database, view: View) -> dict[str, Any]:
    return {
        "firing": _alerts(db, FIRING, 200),
        "recent": _alerts(db, RECENT, 50),
        "silences": silences.listing(db, view.now, view.tz),
    }


ROUTES: list[Route] = [
    Route("/", overview, methods=["GET"]),
    Route("/repos", repos, methods=["GET"]),
    Route("/repos/{owner}/{name}", repo, methods=["GET"]),
    Route("/dependencies", dependencies, methods=["GET"]),
    Route("/trends", trends, methods=["GET"]),
    Route("/alerts", alerts, methods=["GET"]),
]
