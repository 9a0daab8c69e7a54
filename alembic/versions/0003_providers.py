"""Per-tenant model provider credentials and model price overrides.

Revision ID: 0003_providers
Revises: 0002_agents
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op
from atom_core.db import rls

revision: str = "0003_providers"
down_revision: str | Sequence[str] | None = "0002_agents"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def _tenant_fk() -> sa.Column:
    return sa.Column(
        "tenant_id", sa.Uuid(), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True
    )


def upgrade() -> None:
    op.create_table(
        "provider_credentials",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _tenant_fk(),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("api_key_encrypted", sa.Text(), nullable=True),
        sa.Column("api_key_hint", sa.String(8), nullable=True),
        sa.Column("api_base", sa.String(2048), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.UniqueConstraint("tenant_id", "provider", name="uq_provider_credentials_tenant_provider"),
    )
    op.create_table(
        "model_prices",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _tenant_fk(),
        sa.Column("model", sa.String(200), nullable=False),
        # Exact decimal text (see atom_core.llm.models.DecimalText): SQLite has no exact NUMERIC.
        sa.Column("input_usd_per_mtok", sa.String(32), nullable=False),
        sa.Column("output_usd_per_mtok", sa.String(32), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.UniqueConstraint("tenant_id", "model", name="uq_model_prices_tenant_model"),
    )
    if op.get_bind().dialect.name == "postgresql":
        rls.run(op.execute, rls.tenant_table("provider_credentials") + rls.tenant_table("model_prices"))


def downgrade() -> None:
    op.drop_table("model_prices")
    op.drop_table("provider_credentials")
