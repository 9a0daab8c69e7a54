"""Workflow tables (tenant-owned): definitions with immutable versions, runs,
step runs, the run's event log, and the index of active runs.

Run statuses:  queued, running, waiting, succeeded, failed, cancelled.
Step statuses: pending, running, waiting, succeeded, failed, skipped, cancelled.
A pending step with `queued_at` set has been handed to an executor and is due
at `due_at`; a running step holds a lease (`lease_until`) its worker renews.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import JSON, Column, Field, SQLModel

from atom_core.db.base import TenantScoped, UTCDateTime, created_at_field, id_field, utcnow

RUN_ACTIVE = frozenset({"queued", "running", "waiting"})
RUN_IN_FLIGHT = ("queued", "running")  # active runs that may have steps in flight (not waiting)
STEP_DONE = frozenset({"succeeded", "skipped"})
STEP_FINAL = frozenset({"succeeded", "skipped", "failed", "cancelled"})


class Workflow(TenantScoped, table=True):
    __tablename__ = "workflows"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "name", name="uq_workflows_tenant_name"),)

    id: uuid.UUID = id_field()
    name: str = Field(max_length=100)
    description: str = Field(default="", max_length=2000)
    latest_version: int = 1
    created_at: datetime = created_at_field()
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class WorkflowVersion(TenantScoped, table=True):
    """A spec as saved. Never updated: a change is a new version."""

    __tablename__ = "workflow_versions"
    __table_args__ = (sa.UniqueConstraint("workflow_id", "version", name="uq_workflow_versions_version"),)

    id: uuid.UUID = id_field()
    workflow_id: uuid.UUID = Field(foreign_key="workflows.id", ondelete="CASCADE")
    version: int
    spec: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    actor: str = Field(default="", max_length=64)
    created_at: datetime = created_at_field()


class WorkflowRun(TenantScoped, table=True):
    __tablename__ = "workflow_runs"
    __table_args__ = (sa.Index("ix_workflow_runs_tenant_created", "tenant_id", "created_at"),)

    id: uuid.UUID = id_field()
    workflow_id: uuid.UUID = Field(foreign_key="workflows.id", ondelete="CASCADE", index=True)
    version: int
    status: str = Field(default="queued", max_length=16)
    input: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    output: Any = Field(default=None, sa_column=Column(JSON, nullable=True))
    error: str | None = Field(default=None, max_length=2000)
    cost_micros: int = Field(default=0, sa_type=sa.BigInteger)
    saved_micros: int = Field(default=0, sa_type=sa.BigInteger)  # cost of the steps a rerun reused
    parent_run_id: uuid.UUID | None = Field(default=None, foreign_key="workflow_runs.id", ondelete="SET NULL")
    from_step: str | None = Field(default=None, max_length=63)
    event_seq: int = 0  # the last event's number; also serialises a run's transitions
    max_parallel: int = 8  # steps in flight at once, fixed when the run starts (every worker obeys the same)
    actor: str = Field(default="", max_length=64)
    role: str = Field(default="member", max_length=16)  # steps act with the starter's role
    user_id: uuid.UUID | None = None
    created_at: datetime = created_at_field()
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class StepRun(TenantScoped, table=True):
    __tablename__ = "workflow_steps"
    __table_args__ = (sa.UniqueConstraint("run_id", "step_id", name="uq_workflow_steps_run_step"),)

    id: uuid.UUID = id_field()
    run_id: uuid.UUID = Field(foreign_key="workflow_runs.id", ondelete="CASCADE", index=True)
    step_id: str = Field(max_length=63)
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    input: Any = Field(default=None, sa_column=Column(JSON, nullable=True))
    output: Any = Field(default=None, sa_column=Column(JSON, nullable=True))
    error: str | None = Field(default=None, max_length=2000)
    cost_micros: int = Field(default=0, sa_type=sa.BigInteger)
    reused: bool = False  # output pinned from the parent run of a rerun
    progress: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))  # map items done
    decision: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    queued_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class WorkflowEvent(TenantScoped, table=True):
    """A run's event log: what `GET /runs/{id}/events` replays (`Last-Event-ID` is `seq`)."""

    __tablename__ = "workflow_events"
    __table_args__ = (sa.UniqueConstraint("run_id", "seq", name="uq_workflow_events_run_seq"),)

    id: uuid.UUID = id_field()
    run_id: uuid.UUID = Field(foreign_key="workflow_runs.id", ondelete="CASCADE")
    seq: int
    type: str = Field(max_length=32)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = created_at_field()


class ActiveRun(SQLModel, table=True):
    """Runs not yet finished, by tenant: the only table the recovery sweep reads
    across tenants (through a read-only policy on `app.sweeper`), and it holds
    ids only, never a run's content."""

    __tablename__ = "workflow_active_runs"

    run_id: uuid.UUID = Field(foreign_key="workflow_runs.id", ondelete="CASCADE", primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id", ondelete="CASCADE", index=True)
    since: datetime = created_at_field()
