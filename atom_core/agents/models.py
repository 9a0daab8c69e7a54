"""Agent definitions (tenant-owned)."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import JSON, Column, Field

from atom_core.db.base import TenantScoped, UTCDateTime, created_at_field, id_field, utcnow


class Agent(TenantScoped, table=True):
    __tablename__ = "agents"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "slug", name="uq_agents_tenant_slug"),)

    id: uuid.UUID = id_field()
    slug: str = Field(max_length=63)
    name: str = Field(max_length=100)
    description: str = Field(default="", max_length=2000)
    category: str = Field(default="general", max_length=40)
    model: str = Field(max_length=200)  # a LiteLLM model string, e.g. openai/gpt-4o-mini
    # Tried in order when the model fails after its retries (LiteLLM model strings too).
    fallbacks: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, server_default=sa.text("'[]'"))
    )
    system_prompt: str = Field(default="", sa_column=Column(sa.Text, nullable=False))
    temperature: float = 0.7
    max_tokens: int = 1024
    tools: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    memory_enabled: bool = False
    maturity: str = Field(default="student", max_length=16)
    template_slug: str | None = Field(default=None, max_length=63)  # the marketplace template it came from
    created_by: uuid.UUID | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    created_at: datetime = created_at_field()
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
