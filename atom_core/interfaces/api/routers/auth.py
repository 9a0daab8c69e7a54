"""Signup, login and signing out."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from atom_core.context import Ctx
from atom_core.interfaces.api.deps import auth_rate_limit, current_ctx, request_id
from atom_core.interfaces.api.schemas import LoginIn, LoginOut, SignupIn, SignupOut
from atom_core.tenancy import service as tenancy

router = APIRouter(prefix="/api/v1/auth", tags=["identity"])


@router.post("/signup", status_code=201, response_model=SignupOut, dependencies=[Depends(auth_rate_limit)])
async def signup(body: SignupIn, request: Request) -> SignupOut:
    result = await tenancy.signup(body.email, body.password, body.tenant_name, request_id=request_id(request))
    return SignupOut(**vars(result))


@router.post("/login", response_model=LoginOut, dependencies=[Depends(auth_rate_limit)])
async def login(body: LoginIn) -> LoginOut:
    result = await tenancy.login(body.email, body.password)
    return LoginOut(**vars(result))


@router.post("/logout", status_code=204)
async def logout(ctx: Ctx = Depends(current_ctx)) -> Response:
    """Sign out everywhere: every login token issued to you so far stops working."""
    await tenancy.sign_out_everywhere(ctx)
    return Response(status_code=204)
