"""Agent runs and the messages of their sessions (tenant-owned)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import JSON, Column, Field

from atom_core.db.base import TenantScoped, UTCDateTime, created_at_field, id_field


class AgentRun(TenantScoped, table=True):
    __tablename__ = "agent_runs"
    __table_args__ = (sa.Index("ix_agent_runs_tenant_created", "tenant_id", "created_at"),)

    id: uuid.UUID = id_field()
    agent_id: uuid.UUID | None = Field(default=None, foreign_key="agents.id", ondelete="SET NULL", index=True)
    agent_slug: str = Field(max_length=63)  # kept when the agent is deleted
    session_id: str = Field(max_length=64, index=True)
    status: str = Field(default="running", max_length=16)
    input: str = Field(sa_column=Column(sa.Text, nullable=False))
    output: str = Field(default="", sa_column=Column(sa.Text, nullable=False))
    model: str = Field(default="", max_length=200)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_micros: int = Field(default=0, sa_type=sa.BigInteger)
    latency_ms: int = 0
    tool_calls: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    error: str | None = Field(default=None, max_length=1000)
    trace_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    actor: str = Field(default="", max_length=64)
    created_at: datetime = created_at_field()
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class AgentMessage(TenantScoped, table=True):
    """One message of a multi-turn session. A session reads in (created_at, seq)
    order: `created_at` is when its run was recorded, `seq` the place in that run."""

    __tablename__ = "agent_messages"
    __table_args__ = (
        sa.Index("ix_agent_messages_session", "tenant_id", "agent_id", "session_id", "created_at", "seq"),
    )

    id: uuid.UUID = id_field()
    agent_id: uuid.UUID = Field(foreign_key="agents.id", ondelete="CASCADE")
    session_id: str = Field(max_length=64)
    run_id: uuid.UUID = Field(foreign_key="agent_runs.id", ondelete="CASCADE")
    seq: int
    role: str = Field(max_length=16)
    content: str = Field(default="", sa_column=Column(sa.Text, nullable=False))
    tool_calls: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    tool_call_id: str | None = Field(default=None, max_length=64)
    name: str | None = Field(default=None, max_length=64)
    created_at: datetime = created_at_field()
