"""Persisted spans: one row per span, grouped by trace (a run's trace id)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import JSON, Column, Field

from atom_core.db.base import TenantScoped, UTCDateTime, id_field


class SpanRecord(TenantScoped, table=True):
    __tablename__ = "spans"
    __table_args__ = (sa.Index("ix_spans_tenant_trace", "tenant_id", "trace_id"),)

    id: uuid.UUID = id_field()
    trace_id: uuid.UUID
    run_id: uuid.UUID | None = Field(default=None, index=True)
    parent_id: uuid.UUID | None = None
    kind: str = Field(max_length=32)
    name: str = Field(max_length=200)
    status: str = Field(max_length=16)
    error: str | None = Field(default=None, max_length=1000)
    started_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_micros: int = Field(default=0, sa_type=sa.BigInteger)
    attributes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class TraceRecord(TenantScoped, table=True):
    """A trace's header (what lists and analytics read); its spans hold the detail."""

    __tablename__ = "traces"
    __table_args__ = (sa.Index("ix_traces_tenant_started", "tenant_id", "started_at"),)

    id: uuid.UUID = id_field()
    run_id: uuid.UUID | None = Field(default=None, index=True)
    name: str = Field(max_length=200)
    status: str = Field(max_length=16)
    started_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_micros: int = Field(default=0, sa_type=sa.BigInteger)
