"""Agents: CRUD over the tenant's agent definitions."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from atom_core.agents import service as agents
from atom_core.agents.models import Agent
from atom_core.context import Ctx
from atom_core.db.pagination import MAX_LIMIT
from atom_core.interfaces.api.deps import current_ctx
from atom_core.interfaces.api.schemas import ListOut, Request

router = APIRouter(prefix="/api/v1/agents", tags=["agents"])


class AgentIn(Request):
    slug: str = Field(max_length=63)
    name: str = Field(max_length=100)
    description: str = Field("", max_length=agents.DESCRIPTION_MAX)
    category: str = Field("general", max_length=40)
    model: str = Field(agents.OFFLINE_MODEL, max_length=200)
    fallbacks: list[str] = Field(
        default_factory=list, max_length=agents.MAX_FALLBACKS, description="Models tried in order if `model` fails"
    )
    system_prompt: str = Field("", max_length=agents.PROMPT_MAX)
    temperature: float = 0.7
    max_tokens: int = 1024
    tools: list[str] = Field(default_factory=list, max_length=64)
    memory_enabled: bool = False
    maturity: str = "student"


class AgentPatch(Request):
    slug: str | None = Field(None, max_length=63)
    name: str | None = Field(None, max_length=100)
    description: str | None = Field(None, max_length=agents.DESCRIPTION_MAX)
    category: str | None = Field(None, max_length=40)
    model: str | None = Field(None, max_length=200)
    fallbacks: list[str] | None = Field(None, max_length=agents.MAX_FALLBACKS)
    system_prompt: str | None = Field(None, max_length=agents.PROMPT_MAX)
    temperature: float | None = None
    max_tokens: int | None = None
    tools: list[str] | None = Field(None, max_length=64)
    memory_enabled: bool | None = None
    maturity: str | None = None


class AgentOut(BaseModel):
    id: uuid.UUID
    slug: str
    name: str
    description: str
    category: str
    model: str
    model_label: str = Field(description="How to show the model: marks the offline model as such")
    fallbacks: list[str]
    system_prompt: str
    temperature: float
    max_tokens: int
    tools: list[str]
    memory_enabled: bool
    maturity: str
    template_slug: str | None
    created_at: datetime
    updated_at: datetime


def _out(agent: Agent) -> AgentOut:
    data = agent.model_dump()
    data["model_label"] = "offline model (no provider)" if agent.model == agents.OFFLINE_MODEL else agent.model
    return AgentOut.model_validate(data)


@router.post("", status_code=201, response_model=AgentOut)
async def create_agent(body: AgentIn, ctx: Ctx = Depends(current_ctx)) -> AgentOut:
    return _out(await agents.create_agent(ctx, agents.AgentInput(**body.model_dump())))


@router.get("", response_model=ListOut[AgentOut])
async def list_agents(
    ctx: Ctx = Depends(current_ctx),
    limit: int = Query(50, ge=1, le=MAX_LIMIT),
    cursor: str | None = Query(None, max_length=200),
    category: str | None = Query(None, max_length=40),
    q: str | None = Query(None, max_length=100),
) -> ListOut[AgentOut]:
    page = await agents.list_agents(ctx, limit=limit, cursor=cursor, category=category, q=q)
    return ListOut[AgentOut](items=[_out(a) for a in page.items], next_cursor=page.next_cursor)


@router.get("/{agent_id}", response_model=AgentOut)
async def get_agent(agent_id: uuid.UUID, ctx: Ctx = Depends(current_ctx)) -> AgentOut:
    return _out(await agents.get_agent(ctx, agent_id))


@router.patch("/{agent_id}", response_model=AgentOut)
async def update_agent(agent_id: uuid.UUID, body: AgentPatch, ctx: Ctx = Depends(current_ctx)) -> AgentOut:
    return _out(await agents.update_agent(ctx, agent_id, body.model_dump(exclude_unset=True)))


@router.delete("/{agent_id}", status_code=204)
async def delete_agent(agent_id: uuid.UUID, ctx: Ctx = Depends(current_ctx)) -> Response:
    await agents.delete_agent(ctx, agent_id)
    return Response(status_code=204)
