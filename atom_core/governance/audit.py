"""The audit log: who did what to which target, in which request.

Entries are written inside the transaction of the change they describe, so
a change and its audit entry are committed together or not at all.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import JSON, Column, Field, select
from sqlmodel.ext.asyncio.session import AsyncSession

from atom_core.context import Ctx
from atom_core.db import TenantScoped, session_scope
from atom_core.db.base import UTCDateTime, id_field, utcnow


class AuditEvent(TenantScoped, table=True):
    __tablename__ = "audit_events"
    __table_args__ = (sa.Index("ix_audit_events_tenant_at", "tenant_id", "at"),)

    id: uuid.UUID = id_field()
    actor: str = Field(max_length=64)  # user:<id> | apikey:<id> | system
    action: str = Field(max_length=64)
    target: str = Field(default="", max_length=200)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    request_id: str = Field(default="", max_length=64)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


def record(
    session: AsyncSession,
    ctx: Ctx,
    action: str,
    target: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add an entry to the caller's transaction (never commit it separately)."""
    event = AuditEvent(
        tenant_id=ctx.tenant_id,
        actor=ctx.actor,
        action=action,
        target=target,
        request_id=ctx.request_id,
        details=details or {},
    )
    session.add(event)
    return event


async def list_events(
    ctx: Ctx, *, action: str | None = None, since: datetime | None = None, limit: int = 50
) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.tenant_id == ctx.tenant_id)
    if action:
        query = query.where(AuditEvent.action == action)
    if since:
        query = query.where(AuditEvent.at >= since)
    query = query.order_by(AuditEvent.at.desc()).limit(limit)
    async with session_scope(ctx, readonly=True) as session:
        return list((await session.exec(query)).all())
