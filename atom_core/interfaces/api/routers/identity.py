"""The current user, API keys and members of the caller's tenant."""

from __future__ import annotations

import uuid
from dataclasses import asdict

from fastapi import APIRouter, Depends, Query, Response

from atom_core.context import Ctx
from atom_core.db.pagination import MAX_LIMIT
from atom_core.interfaces.api.deps import current_ctx
from atom_core.interfaces.api.schemas import (
    ApiKeyCreatedOut,
    ApiKeyIn,
    ApiKeyOut,
    Cursor,
    ListOut,
    MemberIn,
    MemberOut,
    MeOut,
)
from atom_core.tenancy import apikeys
from atom_core.tenancy import service as tenancy

router = APIRouter(prefix="/api/v1", tags=["identity"])


@router.get("/me", response_model=MeOut)
async def me(ctx: Ctx = Depends(current_ctx)) -> MeOut:
    return MeOut.model_validate(asdict(await tenancy.me(ctx)))


@router.post("/api-keys", status_code=201, response_model=ApiKeyCreatedOut)
async def create_api_key(body: ApiKeyIn, ctx: Ctx = Depends(current_ctx)) -> ApiKeyCreatedOut:
    created = await apikeys.create(ctx, body.name, body.role)
    return ApiKeyCreatedOut(**asdict(created.info), key=created.key)


@router.get("/api-keys", response_model=ListOut[ApiKeyOut])
async def list_api_keys(
    ctx: Ctx = Depends(current_ctx),
    limit: int = Query(50, ge=1, le=MAX_LIMIT),
    cursor: Cursor | None = None,
) -> ListOut[ApiKeyOut]:
    page = await apikeys.list_keys(ctx, limit=limit, cursor=cursor)
    return ListOut[ApiKeyOut](items=[ApiKeyOut(**asdict(k)) for k in page.items], next_cursor=page.next_cursor)


@router.delete("/api-keys/{key_id}", status_code=204)
async def revoke_api_key(key_id: uuid.UUID, ctx: Ctx = Depends(current_ctx)) -> Response:
    await apikeys.revoke(ctx, key_id)
    return Response(status_code=204)


@router.post("/members", status_code=201, response_model=MemberOut)
async def add_member(body: MemberIn, ctx: Ctx = Depends(current_ctx)) -> MemberOut:
    return MemberOut(**asdict(await tenancy.add_member(ctx, body.email, body.role)))


@router.get("/members", response_model=ListOut[MemberOut])
async def list_members(ctx: Ctx = Depends(current_ctx)) -> ListOut[MemberOut]:
    return ListOut[MemberOut](items=[MemberOut(**asdict(m)) for m in await tenancy.list_members(ctx)])


@router.delete("/members/{user_id}", status_code=204)
async def remove_member(user_id: uuid.UUID, ctx: Ctx = Depends(current_ctx)) -> Response:
    await tenancy.remove_member(ctx, user_id)
    return Response(status_code=204)
