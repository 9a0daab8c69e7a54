"""Identity tables.

`tenants` and `users` are the platform's own; `memberships` and `api_keys`
are tenant-owned. A user may belong to several tenants with one role in each.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from atom_core.db.base import TenantScoped, UTCDateTime, created_at_field, id_field

ROLES = ("viewer", "member", "admin", "owner")


class Tenant(SQLModel, table=True):
    __tablename__ = "tenants"

    id: uuid.UUID = id_field()
    name: str = Field(max_length=100)
    slug: str = Field(max_length=63, unique=True)
    created_at: datetime = created_at_field()


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: uuid.UUID = id_field()
    email: str = Field(max_length=254, unique=True)  # stored lower-cased
    # None: the account cannot sign in with a password (reserved for SSO).
    password_hash: str | None = Field(default=None, max_length=255)
    # Tokens issued before this instant are rejected ("sign out everywhere").
    tokens_valid_after: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = created_at_field()


class Membership(TenantScoped, table=True):
    __tablename__ = "memberships"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "user_id", name="uq_memberships_tenant_user"),)

    id: uuid.UUID = id_field()
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    role: str = Field(max_length=16)
    created_at: datetime = created_at_field()


# Who a key belongs to: a user (`created_by`, the human behind it even when a key
# made it) or the platform operator (CLI; `created_by` NULL). Never neither.
KEY_OWNER_KINDS = ("user", "operator")


class ApiKey(TenantScoped, table=True):
    __tablename__ = "api_keys"
    __table_args__ = (
        sa.CheckConstraint(
            "(owner_kind = 'user' AND created_by IS NOT NULL) OR (owner_kind = 'operator' AND created_by IS NULL)",
            name="ck_api_keys_owner",
        ),
    )

    id: uuid.UUID = id_field()
    name: str = Field(max_length=100)
    prefix: str = Field(max_length=32, unique=True)  # shown in lists; finds the key
    key_hash: str = Field(max_length=128)  # sha256 of the whole key
    role: str = Field(max_length=16)
    owner_kind: str = Field(max_length=16)
    # The owning user; the key is deleted with the account and revoked when they leave the tenant.
    created_by: uuid.UUID | None = Field(default=None, foreign_key="users.id", ondelete="CASCADE", index=True)
    created_at: datetime = created_at_field()
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
