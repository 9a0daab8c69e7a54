"""Workflows: versions, runs, step runs, the event log and the active-run index.

Revision ID: 0007_workflows
Revises: 0006_agent_fallbacks
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op
from atom_core.db import rls

revision: str = "0007_workflows"
down_revision: str | Sequence[str] | None = "0006_agent_fallbacks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)
TABLES = ("workflows", "workflow_versions", "workflow_runs", "workflow_steps", "workflow_events")


def _tenant(index: bool = True) -> sa.Column:
    return sa.Column(
        "tenant_id", sa.Uuid(), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=index
    )


def _fk(name: str, target: str, ondelete: str = "CASCADE", nullable: bool = False, index: bool = False) -> sa.Column:
    return sa.Column(name, sa.Uuid(), sa.ForeignKey(target, ondelete=ondelete), nullable=nullable, index=index)


def upgrade() -> None:
    op.create_table(
        "workflows",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _tenant(),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.String(2000), nullable=False),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.UniqueConstraint("tenant_id", "name", name="uq_workflows_tenant_name"),
    )
    op.create_table(
        "workflow_versions",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _tenant(),
        _fk("workflow_id", "workflows.id"),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.UniqueConstraint("workflow_id", "version", name="uq_workflow_versions_version"),
    )
    op.create_table(
        "workflow_runs",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _tenant(),
        _fk("workflow_id", "workflows.id", index=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("input", sa.JSON(), nullable=False),
        sa.Column("output", sa.JSON(), nullable=True),
        sa.Column("error", sa.String(2000), nullable=True),
        sa.Column("cost_micros", sa.BigInteger(), nullable=False),
        sa.Column("saved_micros", sa.BigInteger(), nullable=False),
        _fk("parent_run_id", "workflow_runs.id", ondelete="SET NULL", nullable=True),
        sa.Column("from_step", sa.String(63), nullable=True),
        sa.Column("event_seq", sa.Integer(), nullable=False),
        sa.Column("max_parallel", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("started_at", TZ, nullable=True),
        sa.Column("finished_at", TZ, nullable=True),
    )
    op.create_index("ix_workflow_runs_tenant_created", "workflow_runs", ["tenant_id", "created_at"])
    op.create_table(
        "workflow_steps",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _tenant(),
        _fk("run_id", "workflow_runs.id", index=True),
        sa.Column("step_id", sa.String(63), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("input", sa.JSON(), nullable=True),
        sa.Column("output", sa.JSON(), nullable=True),
        sa.Column("error", sa.String(2000), nullable=True),
        sa.Column("cost_micros", sa.BigInteger(), nullable=False),
        sa.Column("reused", sa.Boolean(), nullable=False),
        sa.Column("progress", sa.JSON(), nullable=False),
        sa.Column("decision", sa.JSON(), nullable=True),
        sa.Column("queued_at", TZ, nullable=True),
        sa.Column("due_at", TZ, nullable=True),
        sa.Column("lease_until", TZ, nullable=True),
        sa.Column("started_at", TZ, nullable=True),
        sa.Column("finished_at", TZ, nullable=True),
        sa.UniqueConstraint("run_id", "step_id", name="uq_workflow_steps_run_step"),
    )
    op.create_table(
        "workflow_events",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _tenant(),
        _fk("run_id", "workflow_runs.id"),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.UniqueConstraint("run_id", "seq", name="uq_workflow_events_run_seq"),
    )
    op.create_table(
        "workflow_active_runs",
        _fk("run_id", "workflow_runs.id"),
        _tenant(),
        sa.Column("since", TZ, nullable=False),
        sa.PrimaryKeyConstraint("run_id"),
    )
    if op.get_bind().dialect.name == "postgresql":
        for table in (*TABLES, "workflow_active_runs"):
            rls.run(op.execute, rls.tenant_table(table))
        rls.run(op.execute, [rls.sweeper_read("workflow_active_runs")])


def downgrade() -> None:
    op.drop_table("workflow_active_runs")
    for table in reversed(TABLES):
        op.drop_table(table)
