"""Agent definitions: create, read, update, delete inside the caller's tenant."""

from __future__ import annotations

import re
import uuid
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from atom_core.agents.models import Agent
from atom_core.agents.tools.builtins import TOOLS
from atom_core.context import Ctx
from atom_core.db import session_scope, utcnow
from atom_core.db.pagination import Page, paginate
from atom_core.errors import Conflict, Invalid, NotFound
from atom_core.governance import audit
from atom_core.governance.maturity import DEFAULT_LEVEL, check_level
from atom_core.llm import OFFLINE_MODEL
from atom_core.tenancy import permissions
from atom_core.tenancy.validation import check_name
from atom_core.validation import check_text

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*/[A-Za-z0-9._:/@+-]*$")  # provider/model
MODEL_MAX = 200
PROMPT_MAX = 20_000
DESCRIPTION_MAX = 2000
MAX_TOKENS_LIMIT = 128_000
MAX_FALLBACKS = 5
MODEL_HINT = "a LiteLLM model string like 'openai/gpt-4o-mini' or 'atom/offline'"


@dataclass
class AgentInput:
    """What a caller may set on an agent; every interface builds one of these."""

    slug: str
    name: str
    description: str = ""
    category: str = "general"
    model: str = OFFLINE_MODEL
    fallbacks: list[str] = field(default_factory=list)
    system_prompt: str = ""
    temperature: float = 0.7
    max_tokens: int = 1024
    tools: list[str] = field(default_factory=list)
    memory_enabled: bool = False
    maturity: str = DEFAULT_LEVEL
    template_slug: str | None = None


EDITABLE = frozenset(f.name for f in fields(AgentInput)) - {"template_slug"}


def validate(data: AgentInput) -> AgentInput:
    """Check every field; the first problem is raised with its field name."""
    if not isinstance(data.slug, str) or not SLUG_RE.match(data.slug):
        raise Invalid(
            "slug must be 1-63 lower-case letters, digits or dashes, not starting or ending with a dash", field="slug"
        )
    data.name = check_name(data.name, "name")
    data.category = check_name(data.category, "category", max_length=40).lower()
    check_text(data.description, "description", max_length=DESCRIPTION_MAX)
    check_text(data.system_prompt, "system_prompt", max_length=PROMPT_MAX)
    if not _is_model(data.model):
        raise Invalid(f"model must be {MODEL_HINT}", field="model")
    _check_fallbacks(data.fallbacks, data.model)
    if not isinstance(data.temperature, int | float) or not 0 <= data.temperature <= 2:
        raise Invalid("temperature must be between 0 and 2", field="temperature")
    if not isinstance(data.max_tokens, int) or not 1 <= data.max_tokens <= MAX_TOKENS_LIMIT:
        raise Invalid(f"max_tokens must be between 1 and {MAX_TOKENS_LIMIT}", field="max_tokens")
    if not isinstance(data.tools, list) or not all(isinstance(t, str) for t in data.tools):
        raise Invalid("tools must be a list of tool names", field="tools")
    if len(set(data.tools)) != len(data.tools):
        raise Invalid("tools must be a list of distinct tool names", field="tools")
    TOOLS.validate_names(data.tools)
    check_level(data.maturity)
    return data


def _is_model(value: object) -> bool:
    return isinstance(value, str) and len(value) <= MODEL_MAX and bool(MODEL_RE.match(value))


def _check_fallbacks(fallbacks: list[str], model: str) -> None:
    if not isinstance(fallbacks, list) or len(fallbacks) > MAX_FALLBACKS:
        raise Invalid(f"fallbacks must be a list of at most {MAX_FALLBACKS} models", field="fallbacks")
    for fallback in fallbacks:
        if not _is_model(fallback):
            raise Invalid(f"each fallback must be {MODEL_HINT}", field="fallbacks")
    if len(set(fallbacks)) != len(fallbacks) or model in fallbacks:
        raise Invalid("fallbacks must be distinct models other than the agent's model", field="fallbacks")


async def create_agent(ctx: Ctx, data: AgentInput) -> Agent:
    permissions.require(ctx, "agents.write")
    validate(data)
    agent = Agent(tenant_id=ctx.tenant_id, created_by=ctx.user_id, **asdict(data))
    try:
        async with session_scope(ctx) as session:
            session.add(agent)
            await session.flush()
            audit.record(session, ctx, "agent.created", f"agent:{agent.id}", {"slug": agent.slug})
    except IntegrityError as exc:
        raise _slug_conflict(exc, data.slug) from None
    return agent


async def list_agents(
    ctx: Ctx, *, limit: int = 50, cursor: str | None = None, category: str | None = None, q: str | None = None
) -> Page[Agent]:
    permissions.require(ctx, "agents.read")
    query = select(Agent).where(Agent.tenant_id == ctx.tenant_id)
    if category:
        query = query.where(Agent.category == category.lower())
    if q:
        pattern = _like(q)
        query = query.where(
            or_(*(column.ilike(pattern, escape="\\") for column in (Agent.name, Agent.slug, Agent.description)))
        )
    async with session_scope(ctx, readonly=True) as session:
        return await paginate(session, query, Agent.created_at, Agent.id, limit=limit, cursor=cursor)


async def get_agent(ctx: Ctx, agent_id: uuid.UUID) -> Agent:
    permissions.require(ctx, "agents.read")
    async with session_scope(ctx, readonly=True) as session:
        return await _load(session, ctx, agent_id)


async def get_agent_by_slug(ctx: Ctx, slug: str) -> Agent:
    permissions.require(ctx, "agents.read")
    async with session_scope(ctx, readonly=True) as session:
        query = select(Agent).where(Agent.tenant_id == ctx.tenant_id, Agent.slug == slug)
        agent = (await session.exec(query)).first()
    if agent is None:
        raise NotFound(f"no agent '{slug}'", field="agent")
    return agent


async def update_agent(ctx: Ctx, agent_id: uuid.UUID, changes: dict[str, Any]) -> Agent:
    permissions.require(ctx, "agents.write")
    unknown = set(changes) - EDITABLE
    if unknown:
        name = sorted(unknown)[0]
        raise Invalid(f"{name} cannot be changed", field=name)
    try:
        async with session_scope(ctx) as session:
            agent = await _load(session, ctx, agent_id)
            current = {f.name: getattr(agent, f.name) for f in fields(AgentInput)}
            validated = validate(AgentInput(**(current | changes)))
            for name in changes:
                setattr(agent, name, getattr(validated, name))
            agent.updated_at = utcnow()
            session.add(agent)
            await session.flush()
            audit.record(session, ctx, "agent.updated", f"agent:{agent.id}", {"fields": sorted(changes)})
    except IntegrityError as exc:
        raise _slug_conflict(exc, changes.get("slug")) from None
    return agent


async def delete_agent(ctx: Ctx, agent_id: uuid.UUID) -> None:
    permissions.require(ctx, "agents.write")
    async with session_scope(ctx) as session:
        agent = await _load(session, ctx, agent_id)
        await session.delete(agent)
        audit.record(session, ctx, "agent.deleted", f"agent:{agent.id}", {"slug": agent.slug})


def _slug_conflict(exc: IntegrityError, slug: str | None) -> Exception:
    """A clash on the per-tenant slug is the caller's conflict; anything else is a bug to surface."""
    if slug is None or "slug" not in str(exc.orig).lower():
        return exc
    return Conflict(f"an agent with slug '{slug}' already exists", field="slug")


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def _load(session: AsyncSession, ctx: Ctx, agent_id: uuid.UUID) -> Agent:
    query = select(Agent).where(Agent.tenant_id == ctx.tenant_id, Agent.id == agent_id)
    agent = (await session.exec(query)).first()
    if agent is None:
        raise NotFound("agent not found")
    return agent
