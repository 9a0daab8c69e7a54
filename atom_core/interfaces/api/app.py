"""The FastAPI application: `atom api` serves it alone; the dashboard mounts
Reflex inside it (Reflex's `api_transformer`), so both share one port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from starlette.routing import Match

import atom_core
from atom_core.errors import NotFound
from atom_core.interfaces.api import errors
from atom_core.interfaces.api.middleware import RequestContextMiddleware
from atom_core.interfaces.api.routers import (
    agents,
    analytics,
    auth,
    identity,
    marketplace,
    providers,
    runs,
    service,
    tools,
    workflows,
)
from atom_core.interfaces.api.schemas import ErrorOut
from atom_core.llm import engine
from atom_core.plugins import load_plugins
from atom_core.settings import get_settings
from atom_core.workflows import executors

_fallback = APIRouter()

# Every operation answers errors in one envelope; the schema says so, so that
# generated clients parse them and fuzzers know which statuses are expected.
ERROR_STATUSES = {
    400: "The body is not valid JSON",
    401: "Not signed in, or the token or key is not valid",
    403: "Signed in, but your role does not allow it",
    404: "Not found in your tenant",
    409: "Conflicts with the current state",
    413: "The body is over 1 MiB",
    422: "Bad input: `field` names the field, parameter or header",
    429: "Rate limited or at a concurrency cap: see Retry-After",
    503: "A service it needs is unavailable: see Retry-After",
}
ERROR_RESPONSES: dict[int | str, dict] = {
    status: {"model": ErrorOut, "description": text} for status, text in ERROR_STATUSES.items()
}


@_fallback.api_route("/api/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
async def unknown_api_path(path: str, request: Request) -> None:
    """Without this, unknown API paths would fall through to the dashboard's pages.

    It matches every method, so Starlette prefers it to a route that has the
    path but not the method: answer 405 for those ourselves.
    """
    allowed = sorted(_methods_for_path(request.app.router.routes, request.scope))
    if allowed:
        raise HTTPException(405, f"{request.method} is not allowed here", headers={"Allow": ", ".join(allowed)})
    raise NotFound(f"no API endpoint at /api/{path}")


def _methods_for_path(routes: list, scope: dict) -> set[str]:
    """Methods of the routes whose path matches but whose method does not."""
    methods: set[str] = set()
    for route in routes:
        if route.matches(scope)[0] != Match.PARTIAL:
            continue
        if isinstance(route, APIRoute):
            methods |= route.methods
        elif hasattr(route, "original_router"):  # FastAPI keeps included routers nested
            methods |= _methods_for_path(route.original_router.routes, scope)
    return methods


@asynccontextmanager
async def lifespan(app: object = None) -> AsyncIterator[None]:
    """Startup work of the API process (also registered with Reflex, which does not run
    the lifespan of the app it mounts): litellm's import takes seconds, paid here, off
    the event loop, instead of by the first request that needs a model. In embedded
    mode this process also executes workflows: it resumes interrupted runs."""
    await engine.load()
    sweeper = None
    if get_settings().executor == "embedded":
        sweeper = asyncio.create_task(executors.sweep_forever())
    try:
        yield
    finally:
        if sweeper is not None:
            sweeper.cancel()


def create_api() -> FastAPI:
    settings = get_settings()
    load_plugins()
    app = FastAPIOffline(
        title="ATOM API",
        version=atom_core.__version__,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        static_url="/api/v1/docs-static",
        swagger_ui_oauth2_redirect_url="/api/v1/docs/oauth2-redirect",
        lifespan=lifespan,
    )
    errors.install(app)
    for router in (
        service.router,
        auth.router,
        identity.router,
        agents.router,
        marketplace.router,
        runs.router,
        providers.router,
        tools.router,
        workflows.router,
        analytics.router,
        _fallback,  # last: it answers every /api path nothing else claimed
    ):
        app.include_router(router, responses=ERROR_RESPONSES)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type", "X-Tenant-ID", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    app.add_middleware(RequestContextMiddleware, hsts_max_age_s=settings.hsts_max_age_s)
    return app
