"""The runtime a request is served by (built in the app's lifespan)."""

from __future__ import annotations

from starlette.requests import Request

from ..runtime import Runtime


def services(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime
