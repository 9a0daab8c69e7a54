"""Ordered fallback models per agent.

Revision ID: 0006_agent_fallbacks
Revises: 0005_tool_settings
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0006_agent_fallbacks"
down_revision: str | Sequence[str] | None = "0005_tool_settings"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A column of an existing table: its RLS policy already covers it. The server
    # default fills the rows that exist (and keeps NOT NULL valid on SQLite).
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("fallbacks", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("fallbacks")
