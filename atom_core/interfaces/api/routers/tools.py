"""Tools: the registry (what agents may be given) and the tenant's tool settings."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from atom_core.agents import tool_settings
from atom_core.agents.tools.builtins import TOOLS
from atom_core.context import Ctx
from atom_core.interfaces.api.deps import current_ctx
from atom_core.interfaces.api.schemas import Request

router = APIRouter(prefix="/api/v1", tags=["tools"])


class ToolSettingsIn(Request):
    http_allowed_hosts: list[str] = Field(max_length=tool_settings.MAX_HOSTS)


class ToolSettingsOut(BaseModel):
    http_allowed_hosts: list[str] = Field(description="Hosts http_get may fetch; empty: http_get is off")


@router.get("/tools")
async def list_tools(ctx: Ctx = Depends(current_ctx)) -> dict[str, Any]:
    """Every tool an agent can be given, with its JSON schema and capability tags."""
    tools = [TOOLS.get(name) for name in TOOLS.names()]
    return {"items": [{"name": t.name, "tags": sorted(t.tags), "schema": t.json_schema()} for t in tools if t]}


@router.get("/tool-settings", response_model=ToolSettingsOut)
async def get_tool_settings(ctx: Ctx = Depends(current_ctx)) -> ToolSettingsOut:
    return ToolSettingsOut(http_allowed_hosts=await tool_settings.get_http_allowed_hosts(ctx))


@router.put("/tool-settings", response_model=ToolSettingsOut)
async def put_tool_settings(body: ToolSettingsIn, ctx: Ctx = Depends(current_ctx)) -> ToolSettingsOut:
    hosts = await tool_settings.set_http_allowed_hosts(ctx, body.http_allowed_hosts)
    return ToolSettingsOut(http_allowed_hosts=hosts)
