"""Signup, login and signing out."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from atom_core.context import Ctx
from atom_core.interfaces.api.deps import client_ip, current_ctx, request_id
from atom_core.interfaces.api.schemas import LoginIn, LoginOut, SignupIn, SignupOut
from atom_core.tenancy import service as tenancy

router = APIRouter(prefix="/api/v1/auth", tags=["identity"])


@router.post("/signup", status_code=201, response_model=SignupOut)
async def signup(body: SignupIn, request: Request) -> SignupOut:
    result = await tenancy.signup(
        body.email, body.password, body.tenant_name, client_ip=client_ip(request), request_id=request_id(request)
    )
    return SignupOut(**vars(result))


@router.post("/login", response_model=LoginOut)
async def login(body: LoginIn, request: Request) -> LoginOut:
    result = await tenancy.login(body.email, body.password, client_ip=client_ip(request))
    return LoginOut(**vars(result))


@router.post("/logout", status_code=204)
async def logout(ctx: Ctx = Depends(current_ctx)) -> Response:
    """Sign out everywhere: every login token issued to you so far stops working."""
    await tenancy.sign_out_everywhere(ctx)
    return Response(status_code=204)
