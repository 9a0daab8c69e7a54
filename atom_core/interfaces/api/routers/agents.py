"""Agents: CRUD over the tenant's agent definitions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from atom_core.agents import service as agents
from atom_core.agents.models import Agent
from atom_core.context import Ctx
from atom_core.db.pagination import MAX_LIMIT
from atom_core.governance.maturity import LEVELS
from atom_core.interfaces.api.deps import current_ctx
from atom_core.interfaces.api.schemas import Cursor, ListOut, Request
from atom_core.validation import Int, Matching, Name, Text

router = APIRouter(prefix="/api/v1/agents", tags=["agents"])


Slug = Matching(agents.SLUG_RE, 63, description="Lower-case letters, digits and dashes; unique in the tenant")
Model = Matching(agents.MODEL_RE, agents.MODEL_MAX, description="A LiteLLM model string: provider/model")
Temperature = Annotated[float, Field(ge=0, le=2)]
MaxTokens = Int(1, agents.MAX_TOKENS_LIMIT)
ToolName = Text(64)
Maturity = Literal[LEVELS]


class AgentIn(Request):
    slug: Slug
    name: Name(100)
    description: Text(agents.DESCRIPTION_MAX) = ""
    category: Name(40) = "general"
    model: Model = agents.OFFLINE_MODEL
    fallbacks: list[Model] = Field(
        default_factory=list, max_length=agents.MAX_FALLBACKS, description="Models tried in order if `model` fails"
    )
    system_prompt: Text(agents.PROMPT_MAX) = ""
    temperature: Temperature = 0.7
    max_tokens: MaxTokens = 1024
    tools: list[ToolName] = Field(default_factory=list, max_length=64)
    memory_enabled: bool = False
    maturity: Maturity = "student"


class AgentPatch(Request):
    slug: Slug | None = None
    name: Name(100) | None = None
    description: Text(agents.DESCRIPTION_MAX) | None = None
    category: Name(40) | None = None
    model: Model | None = None
    fallbacks: list[Model] | None = Field(None, max_length=agents.MAX_FALLBACKS)
    system_prompt: Text(agents.PROMPT_MAX) | None = None
    temperature: Temperature | None = None
    max_tokens: MaxTokens | None = None
    tools: list[ToolName] | None = Field(None, max_length=64)
    memory_enabled: bool | None = None
    maturity: Maturity | None = None


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
    cursor: Cursor | None = None,
    category: Text(40) | None = Query(None),
    q: Text(100) | None = Query(None),
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
