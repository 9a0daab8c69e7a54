"""Tool settings per tenant (the http_get host allow-list).

Revision ID: 0005_tool_settings
Revises: 0004_runs
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op
from atom_core.db import rls

revision: str = "0005_tool_settings"
down_revision: str | Sequence[str] | None = "0004_runs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tool_settings",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("tenant_id", sa.Uuid(), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, unique=True),
        sa.Column("http_allowed_hosts", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        rls.run(op.execute, rls.tenant_table("tool_settings"))


def downgrade() -> None:
    op.drop_table("tool_settings")
