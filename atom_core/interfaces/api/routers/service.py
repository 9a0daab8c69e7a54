"""Service endpoints: health and Prometheus metrics."""

from __future__ import annotations

import hmac
import ipaddress

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from atom_core.errors import Forbidden, Unauthorized
from atom_core.infra.health import health as check_health
from atom_core.interfaces.api.schemas import HealthOut
from atom_core.settings import get_settings

router = APIRouter(tags=["service"])


@router.get("/health", response_model=HealthOut, responses={503: {"model": HealthOut}})
async def health() -> JSONResponse:
    """`ok` (200) when every configured dependency answers, else `degraded` (503)."""
    status, checks = await check_health()
    return JSONResponse({"status": status, "checks": checks}, status_code=200 if status == "ok" else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Off the public surface: with `ATOM_METRICS_TOKEN` set, for its bearer only;
    without it, for clients on this machine only."""
    _admit_scraper(request)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _admit_scraper(request: Request) -> None:
    token = get_settings().metrics_token
    if token is not None and token.get_secret_value():
        scheme, _, sent = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(sent.encode(), token.get_secret_value().encode()):
            raise Unauthorized("metrics need 'Authorization: Bearer <ATOM_METRICS_TOKEN>'", code="invalid_token")
    elif not _is_loopback(request.client.host if request.client else ""):
        raise Forbidden("metrics are served to this machine only; set ATOM_METRICS_TOKEN to scrape from elsewhere")


def _is_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 from a dual-stack socket
    return (mapped or address).is_loopback
