"""A tenant's settings for tools: today, the hosts `http_get` may fetch.

Empty (the default) means `http_get` is off for the tenant. The runtime reads
the settings once per run through the same short in-process cache as model
settings; a change through this process applies at once.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from sqlmodel import JSON, Column, Field, select

from atom_core.agents.tools.env import ToolEnv, normalize_allowed_host
from atom_core.context import Ctx
from atom_core.db import TenantScoped, session_scope, utcnow
from atom_core.db.base import UTCDateTime, id_field
from atom_core.errors import Invalid
from atom_core.governance import audit
from atom_core.llm import config_cache
from atom_core.tenancy import permissions

MAX_HOSTS = 100
_CACHE_KEY = "tool-env"
log = logging.getLogger(__name__)


class ToolSettings(TenantScoped, table=True):
    __tablename__ = "tool_settings"

    id: uuid.UUID = id_field()
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id", unique=True, nullable=False, ondelete="CASCADE")
    http_allowed_hosts: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


async def get_http_allowed_hosts(ctx: Ctx) -> list[str]:
    permissions.require(ctx, "tools.read")
    return sorted((await tool_env(ctx)).http_allowed_hosts)


async def set_http_allowed_hosts(ctx: Ctx, hosts: list[str]) -> list[str]:
    permissions.require(ctx, "tools.manage")
    if not isinstance(hosts, list) or len(hosts) > MAX_HOSTS:
        raise Invalid(f"http_allowed_hosts must be a list of at most {MAX_HOSTS} hosts", field="http_allowed_hosts")
    normalized = sorted({normalize_allowed_host(host) for host in hosts})
    async with session_scope(ctx) as session:
        row = (await session.exec(select(ToolSettings).where(ToolSettings.tenant_id == ctx.tenant_id))).first()
        row = row or ToolSettings(tenant_id=ctx.tenant_id)
        row.http_allowed_hosts, row.updated_at = normalized, utcnow()
        session.add(row)
        audit.record(session, ctx, "tools.http_allowlist_set", "tool_settings", {"hosts": normalized})
    config_cache.forget(ctx.tenant_id)
    return normalized


async def tool_env(ctx: Ctx) -> ToolEnv:
    """The tools' environment for one run of this tenant."""
    cached = config_cache.get(ctx.tenant_id, _CACHE_KEY)
    if cached is not None:
        return cached
    async with session_scope(ctx, readonly=True) as session:
        row = (await session.exec(select(ToolSettings).where(ToolSettings.tenant_id == ctx.tenant_id))).first()
    env = ToolEnv(http_allowed_hosts=_readable_hosts(row.http_allowed_hosts if row else []))
    config_cache.put(ctx.tenant_id, _CACHE_KEY, env)
    return env


def _readable_hosts(stored: object) -> frozenset[str]:
    """The stored entries in today's canonical form. One that no longer parses (saved by an
    older version) is left out and logged, so that it cannot break the tenant's settings or runs."""
    hosts: set[str] = set()
    for entry in stored if isinstance(stored, list) else []:
        try:
            hosts.add(normalize_allowed_host(entry))
        except Invalid:
            log.warning("ignoring an unreadable http_get allow-list entry (tenant settings need saving again)")
    return frozenset(hosts)
