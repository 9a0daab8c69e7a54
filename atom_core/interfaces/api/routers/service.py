"""Service endpoints: health and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from atom_core.infra.health import health as check_health
from atom_core.interfaces.api.schemas import HealthOut

router = APIRouter(tags=["service"])


@router.get("/health", response_model=HealthOut, responses={503: {"model": HealthOut}})
async def health() -> JSONResponse:
    """`ok` (200) when every configured dependency answers, else `degraded` (503)."""
    status, checks = await check_health()
    return JSONResponse({"status": status, "checks": checks}, status_code=200 if status == "ok" else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
