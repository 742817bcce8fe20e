"""The web dashboard: server-rendered HTML over the same read-side queries as the API.

Pages: ``/`` overview, ``/repos`` (sortable), ``/repos/{owner}/{name}``, ``/dependencies``
and a repository's tree ``/dependencies/{owner}/{name}``, ``/trends``, ``/alerts``,
``/summary`` (the status summary's items, ``?status=`` one status).
No JavaScript and nothing fetched from elsewhere: the CSS is inline in
templates/base.html, charts are inline SVG (charts.py). Pages reload every 60 s.

Access. The dashboard needs the API token unless ``PULSEHOOK_OPEN_READS`` opens
reads. Scripts send ``Authorization: Bearer <token>`` as for the API, and a person
opens any page once as ``/?token=<token>``: the answer is a redirect to the same page
without the token (it leaves the address bar) that sets the HttpOnly, SameSite=Strict
cookie ``pulsehook_dashboard``. The cookie is signed with the token and a timestamp
(itsdangerous): it expires after ``PULSEHOOK_SESSION_MAX_AGE_SECONDS``, opens no API
access, and stops working when the token changes. Anything else: a 401 page.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from itsdangerous import BadSignature, URLSafeTimedSerializer
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from ..clock import local_minute
from ..settings import Settings
from ..store.db import Tx
from . import dashboard_pages as pages
from . import grades
from .auth import matches, require_token
from .dashboard_pages import View
from .services import services

Endpoint = Callable[[Request], Awaitable[Response]]
COOKIE = "pulsehook_dashboard"
SESSION_SALT = "pulsehook dashboard session"
REFRESH_SECONDS = 60
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
    ("summary", "/summary", "Summary"),
)


@functools.cache
def environment() -> Environment:
    # Formatting helpers are macros in templates/_macros.html.
    env = Environment(
        loader=PackageLoader("pulsehook", "web/templates"), autoescape=select_autoescape()
    )
    env.filters["local"] = local_minute
    # Score and build grades (CSS classes), shared with the badges: web/grades.py.
    env.filters["score_grade"] = grades.score_grade
    env.filters["score_text"] = grades.score_text
    env.filters["build_grade"] = grades.build_grade
    return env


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


def _signer(settings: Settings) -> URLSafeTimedSerializer:
    assert settings.api_token is not None
    return URLSafeTimedSerializer(settings.api_token.get_secret_value(), salt=SESSION_SALT)


def _signed_in(request: Request, settings: Settings) -> bool:
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return False
    try:
        _signer(settings).loads(cookie, max_age=settings.session_max_age_seconds)
    except BadSignature:  # also an expired one (SignatureExpired derives from it)
        return False
    return True


def _gate(request: Request, settings: Settings) -> Response | None:
    """None when the request may see the dashboard, else the answer (see the module doc)."""
    if settings.open_reads:
        return None
    if settings.api_token is None:
        return _denied(request, "No API token is configured (PULSEHOOK_API_TOKEN).")
    given = request.query_params.get("token")
    if given is not None:
        if not matches(given, [settings.api_token.get_secret_value().encode()]):
            return _denied(request, "That token is not the right one.")
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
        response = RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
        response.set_cookie(
            COOKIE,
            _signer(settings).dumps("dashboard"),
            max_age=settings.session_max_age_seconds,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response
    if "authorization" in request.headers:
        try:
            require_token(request, settings)
        except HTTPException:
            return _denied(request, "The Authorization header has the wrong token.")
        return None
    if _signed_in(request, settings):
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


Build = Callable[[Tx, View], "dict[str, Any] | None"]


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
                return render(
                    request, "error.html", status=404, active=active, now=now, tz=view.tz, **context
                )
            return render(request, template, active=active, now=now, tz=view.tz, **context)

        return handle

    return wrap


ROUTES: list[Route] = [
    Route("/", page("overview.html", "overview")(pages.overview), methods=["GET"]),
    Route("/repos", page("repos.html", "repos")(pages.repos), methods=["GET"]),
    Route("/repos/{owner}/{name}", page("repo.html", "repos")(pages.repo), methods=["GET"]),
    Route(
        "/dependencies",
        page("dependencies.html", "dependencies")(pages.dependencies),
        methods=["GET"],
    ),
    Route(
        "/dependencies/{owner}/{name}",
        page("dependency_tree.html", "dependencies")(pages.dependency_tree),
        methods=["GET"],
    ),
    Route("/trends", page("trends.html", "trends")(pages.trends), methods=["GET"]),
    Route("/alerts", page("alerts.html", "alerts")(pages.alerts), methods=["GET"]),
    Route("/summary", page("summary.html", "summary")(pages.summary), methods=["GET"]),
]
