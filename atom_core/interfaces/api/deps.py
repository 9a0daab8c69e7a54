"""Request dependencies: the caller's context and the auth rate limit."""

from __future__ import annotations

import uuid

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from atom_core.context import Ctx
from atom_core.errors import Invalid, Unauthorized
from atom_core.tenancy import service as tenancy

bearer = HTTPBearer(auto_error=False, description="A login token or an API key (atom_…)")


def request_id(request: Request) -> str:
    return getattr(request.state, "request_id", "")


async def current_ctx(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    x_tenant_id: str | None = Header(None, description="Pick one of your tenants"),
) -> Ctx:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthorized("authentication required: send 'Authorization: Bearer <token>'")
    tenant_id = None
    if x_tenant_id:
        try:
            tenant_id = uuid.UUID(x_tenant_id)
        except ValueError:
            raise Invalid("X-Tenant-ID must be a tenant id (UUID)", field="X-Tenant-ID") from None
    return await tenancy.authenticate(credentials.credentials, tenant_id, request_id=request_id(request))


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def credential(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> str:
    """The caller's token or API key, for streams that authenticate it again while open
    (`current_ctx`, evaluated with it, has already refused a request without one)."""
    return credentials.credentials if credentials else ""
