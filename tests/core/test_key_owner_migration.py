"""Migration 0008 gives every existing API key its owner, traced through the audit log."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from atom_core.db import migrate as migrations
from tests.conftest import PG_URL
from tests.core.test_migrations import empty_database, migrate, sync_url  # noqa: F401 (a fixture)

NOW = datetime.now(UTC)


def engine_of(url: str) -> sa.Engine:
    return sa.create_engine(sync_url(url))


def run_sql(url: str, statements: list[tuple[str, dict]]) -> None:
    engine = engine_of(url)
    try:
        with engine.begin() as conn:
            for sql, params in statements:
                conn.execute(sa.text(sql), params)
    finally:
        engine.dispose()


def as_stored(url: str, value: uuid.UUID) -> str:
    """A uuid as a raw statement must bind it (SQLite keeps 32 hex digits)."""
    return value.hex if url.startswith("sqlite") else str(value)


def as_rls(url: str, variable: str, value: uuid.UUID) -> list[tuple[str, dict]]:
    """On PostgreSQL, FORCE binds the owner role too: name the row's tenant or user."""
    if url.startswith("sqlite"):
        return []
    return [(f"SELECT set_config('{variable}', :value, true)", {"value": str(value)})]


def test_keys_without_a_creator_get_their_owner(empty_database: str) -> None:  # noqa: F811
    url = empty_database
    app_role = None if url.startswith("sqlite") else make_url(PG_URL).username
    migrations.upgrade("0007_workflows", url=url, app_role=app_role)
    tenant, alice, bob, ghost = (uuid.uuid4() for _ in range(4))
    names = ("alice", "alice_child", "grandchild", "bob", "bob_child", "ops", "ghost")
    keys = {name: uuid.uuid4() for name in names}
    u = lambda value: as_stored(url, value)  # noqa: E731
    rows: list[tuple[str, dict]] = [
        *as_rls(url, "app.tenant_id", tenant),
        ("INSERT INTO tenants (id, name, slug, created_at) VALUES (:id, 't', 't', :now)", {"id": u(tenant)}),
    ]
    for user in (alice, bob):
        rows += as_rls(url, "app.user_id", user)
        rows.append(
            (
                "INSERT INTO users (id, email, created_at) VALUES (:id, :email, :now)",
                {"id": u(user), "email": f"{user}@x.io"},
            )
        )
    rows += [
        (
            "INSERT INTO memberships (id, tenant_id, user_id, role, created_at) VALUES (:id, :t, :u, 'member', :now)",
            {"id": u(uuid.uuid4()), "t": u(tenant), "u": u(alice)},
        ),  # bob was removed; under 0007 the keys made through his key survived him
    ]
    creators = {
        "alice": (alice, "user:" + str(alice)),
        "alice_child": (None, f"apikey:{keys['alice']}"),
        "grandchild": (None, f"apikey:{keys['alice_child']}"),
        "bob": (bob, "user:" + str(bob)),
        "bob_child": (None, f"apikey:{keys['bob']}"),
        "ops": (None, "system"),
        "ghost": (None, f"user:{ghost}"),  # an account deleted later (0001 set created_by NULL)
    }
    for name, (created_by, actor) in creators.items():
        rows.append(
            (
                "INSERT INTO api_keys (id, tenant_id, name, prefix, key_hash, role, created_by, created_at)"
                " VALUES (:id, :t, :name, :name, 'h', 'member', :by, :now)",
                {"id": u(keys[name]), "t": u(tenant), "name": name, "by": u(created_by) if created_by else None},
            )
        )
        rows.append(
            (
                "INSERT INTO audit_events (id, tenant_id, actor, action, target, at, request_id, details)"
                " VALUES (:id, :t, :actor, 'apikey.created', :target, :now, 'r', '{}')",
                {"id": u(uuid.uuid4()), "t": u(tenant), "actor": actor, "target": f"apikey:{keys[name]}"},
            )
        )
    run_sql(url, [(sql, params | {"now": NOW}) for sql, params in rows])

    migrate("upgrade", url)

    engine = engine_of(url)
    try:
        with engine.connect() as conn:
            for sql, params in as_rls(url, "app.tenant_id", tenant):
                conn.execute(sa.text(sql), params)
            found = conn.execute(sa.text("SELECT name, owner_kind, created_by, revoked_at FROM api_keys")).all()
    finally:
        engine.dispose()
    owners = {
        name: (kind, uuid.UUID(str(by)) if by else None, revoked is not None) for name, kind, by, revoked in found
    }
    assert owners == {
        "alice": ("user", alice, False),
        "alice_child": ("user", alice, False),
        "grandchild": ("user", alice, False),
        "bob": ("user", bob, True),  # he left the tenant: his keys stop working
        "bob_child": ("user", bob, True),
        "ops": ("operator", None, False),
        "ghost": ("operator", None, True),
    }
