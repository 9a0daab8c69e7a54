"""Every API key has an owner; the policies on `users` reachable without a tenant are narrowed.

- `api_keys.owner_kind`: `user` (then `created_by` is that user, and the key is
  deleted with the account) or `operator` (the CLI; `created_by` NULL). Existing
  keys with no creator are traced through the audit log: a key made with a key
  belongs to the owner of that key (0007 stored it with no creator), a key made
  by the CLI (actor `system`) to the operator. A key whose owner has left its
  tenant, or whose owner's account is gone, is revoked.
- PostgreSQL: `users.auth_lookup` becomes read-only and `users.self` loses DELETE
  (see `rls.narrow_user_lookups`).

Revision ID: 0008_key_owners
Revises: 0007_workflows
Create Date: 2026-11-24
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa

from alembic import op
from atom_core.db import rls

revision: str = "0008_key_owners"
down_revision: str | Sequence[str] | None = "0007_workflows"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OWNER_CHECK = "(owner_kind = 'user' AND created_by IS NOT NULL) OR (owner_kind = 'operator' AND created_by IS NULL)"
# FORCE binds the owner role that runs migrations: lifted while old rows are traced.
TRACED_TABLES = ("api_keys", "audit_events", "memberships", "users")
# SQLite reflects the unnamed foreign key of 0001 under this name in batch mode.
SQLITE_NAMES = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}

api_keys = sa.table(
    "api_keys",
    sa.column("id", sa.Uuid()),
    sa.column("tenant_id", sa.Uuid()),
    sa.column("created_by", sa.Uuid()),
    sa.column("owner_kind", sa.String()),
    sa.column("revoked_at", sa.DateTime(timezone=True)),
)
audit_events = sa.table(
    "audit_events", sa.column("actor", sa.String()), sa.column("action", sa.String()), sa.column("target", sa.String())
)
memberships = sa.table("memberships", sa.column("tenant_id", sa.Uuid()), sa.column("user_id", sa.Uuid()))
users = sa.table("users", sa.column("id", sa.Uuid()))


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("api_keys", naming_convention=SQLITE_NAMES) as batch:
        batch.add_column(sa.Column("owner_kind", sa.String(16), nullable=False, server_default="user"))
    if postgres:
        rls.run(op.execute, [f"ALTER TABLE {t} NO FORCE ROW LEVEL SECURITY" for t in TRACED_TABLES])
    _trace_owners(op.get_bind())
    if postgres:
        rls.run(op.execute, [f"ALTER TABLE {t} FORCE ROW LEVEL SECURITY" for t in TRACED_TABLES])
    with op.batch_alter_table("api_keys", naming_convention=SQLITE_NAMES) as batch:
        batch.drop_constraint(_created_by_fk(postgres), type_="foreignkey")
        batch.create_foreign_key(_created_by_fk(postgres), "users", ["created_by"], ["id"], ondelete="CASCADE")
        batch.create_check_constraint("ck_api_keys_owner", OWNER_CHECK)
        batch.create_index("ix_api_keys_created_by", ["created_by"])
    if postgres:
        rls.run(op.execute, rls.narrow_user_lookups())


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        rls.run(op.execute, rls.widen_user_lookups())
    with op.batch_alter_table("api_keys", naming_convention=SQLITE_NAMES) as batch:
        batch.drop_index("ix_api_keys_created_by")
        batch.drop_constraint("ck_api_keys_owner", type_="check")
        batch.drop_constraint(_created_by_fk(postgres), type_="foreignkey")
        batch.create_foreign_key(_created_by_fk(postgres), "users", ["created_by"], ["id"], ondelete="SET NULL")
        batch.drop_column("owner_kind")


def _created_by_fk(postgres: bool) -> str:
    return "api_keys_created_by_fkey" if postgres else "fk_api_keys_created_by_users"


def _trace_owners(conn: sa.Connection) -> None:
    """Give every key made before owners existed its owner (see the module's text)."""
    keys = {row.id: row for row in conn.execute(sa.select(api_keys))}
    creators = {
        row.target.removeprefix("apikey:"): row.actor
        for row in conn.execute(sa.select(audit_events).where(audit_events.c.action == "apikey.created"))
    }
    members = {(row.tenant_id, row.user_id) for row in conn.execute(sa.select(memberships))}
    accounts = {row.id for row in conn.execute(sa.select(users))}
    now = datetime.now(UTC)
    for key in keys.values():
        user_id = _owner(key.id, keys, creators, set())
        if user_id is None:
            values, lost = {"owner_kind": "operator", "created_by": None}, False
        elif user_id not in accounts:  # the account was deleted: its keys must not work
            values, lost = {"owner_kind": "operator", "created_by": None}, True
        else:  # a member removed under 0007 kept the keys made through their keys
            values, lost = {"owner_kind": "user", "created_by": user_id}, (key.tenant_id, user_id) not in members
        if lost and key.revoked_at is None:
            values["revoked_at"] = now
        conn.execute(sa.update(api_keys).where(api_keys.c.id == key.id).values(**values))


def _owner(key_id: uuid.UUID, keys: dict, creators: dict[str, str], seen: set) -> uuid.UUID | None:
    """The user behind a key, following keys made with keys; None: the operator."""
    key = keys.get(key_id)
    if key is None or key_id in seen:
        return None
    if key.created_by is not None:
        return key.created_by
    seen.add(key_id)
    kind, _, value = creators.get(str(key_id), "").partition(":")
    if kind == "user":  # the creator's account was deleted (0001's foreign key set NULL)
        return uuid.UUID(value)
    if kind == "apikey":
        return _owner(uuid.UUID(value), keys, creators, seen)
    return None
