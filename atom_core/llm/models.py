"""Per-tenant provider credentials and model price overrides (tenant-owned tables)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Column, Field

from atom_core.db.base import TenantScoped, UTCDateTime, created_at_field, id_field, utcnow

PRICE_SCALE = 6  # decimal places kept per price (USD per million tokens)
PRICE_TEXT_LENGTH = 32


class DecimalText(TypeDecorator):
    """An exact decimal stored as its plain text, e.g. "0.150000".

    Not `Numeric`: SQLite has no exact decimal type (a NUMERIC column keeps a
    REAL), and embedded and server mode share one code path. Prices are never
    summed in SQL (costs are integer micro-dollars computed in Python), so
    text costs nothing here and is exact on both backends.
    """

    impl = sa.String(PRICE_TEXT_LENGTH)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: sa.Dialect) -> str | None:
        if value is None:
            return None
        if not isinstance(value, Decimal) or not value.is_finite():
            raise ValueError("a finite Decimal is required")
        return format(value, "f")

    def process_result_value(self, value: str | None, dialect: sa.Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


class ProviderCredential(TenantScoped, table=True):
    __tablename__ = "provider_credentials"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "provider", name="uq_provider_credentials_tenant_provider"),)

    id: uuid.UUID = id_field()
    provider: str = Field(max_length=64)  # a LiteLLM provider prefix: openai, anthropic, ollama, …
    api_key_encrypted: str | None = Field(default=None, sa_column=Column(sa.Text, nullable=True))  # Fernet token
    api_key_hint: str | None = Field(default=None, max_length=8)  # "…a1b2": enough to recognise, not to use
    api_base: str | None = Field(default=None, max_length=2048)
    created_at: datetime = created_at_field()
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class ModelPrice(TenantScoped, table=True):
    __tablename__ = "model_prices"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "model", name="uq_model_prices_tenant_model"),)

    id: uuid.UUID = id_field()
    model: str = Field(max_length=200)  # the full LiteLLM model string, e.g. openai/my-model
    input_usd_per_mtok: Decimal = Field(sa_column=Column(DecimalText, nullable=False))
    output_usd_per_mtok: Decimal = Field(sa_column=Column(DecimalText, nullable=False))
    created_at: datetime = created_at_field()
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
