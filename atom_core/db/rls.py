"""Row-level security DDL for PostgreSQL, used by the Alembic migrations.

Every tenant-owned table gets ENABLE + FORCE ROW LEVEL SECURITY and a
`tenant_isolation` policy on `app.tenant_id` (set per transaction by
`atom_core.db.session`). FORCE makes the policy bind the table owner too.
A few narrow read-only policies let authentication find one row it already
names (a user by email, a key by prefix, a user's own memberships).
"""

from __future__ import annotations

from collections.abc import Callable


def setting(name: str, cast: str = "") -> str:
    """The value of an RLS variable, NULL when unset or reset to ''."""
    expr = f"nullif(current_setting('{name}', true), '')"
    return f"{expr}::{cast}" if cast else expr


CURRENT_TENANT = setting("app.tenant_id", "uuid")
CURRENT_USER = setting("app.user_id", "uuid")
AUTH_EMAIL = setting("app.auth_email")
AUTH_KEY_PREFIX = setting("app.auth_key_prefix")
AUTH_TENANT_SLUG = setting("app.auth_tenant_slug")
SWEEPER = setting("app.sweeper")


def enable(table: str) -> list[str]:
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
    ]


def policy(table: str, name: str, using: str, *, command: str = "ALL", check: str | None = None) -> str:
    sql = f"CREATE POLICY {name} ON {table} FOR {command}"
    if command != "INSERT":  # an INSERT policy has only a check (`using` is its check)
        sql += f" USING ({using})"
    if command in ("ALL", "INSERT", "UPDATE"):
        sql += f" WITH CHECK ({check or using})"
    return sql


def tenant_table(table: str, column: str = "tenant_id") -> list[str]:
    """The standard lock for a table with a tenant_id column."""
    return [*enable(table), policy(table, "tenant_isolation", f"{column} = {CURRENT_TENANT}")]


def sweeper_read(table: str) -> str:
    """Lets the workflow recovery sweep list a table's rows across tenants.
    Only for tables that hold ids and no content (`workflow_active_runs`)."""
    return policy(table, "sweeper_read", f"{SWEEPER} = 'on'", command="SELECT")


def identity_tables() -> list[str]:
    """Policies of the spine's identity tables (tenants, users, memberships, api_keys)."""
    member_of_current_tenant = (
        f"EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = users.id AND m.tenant_id = {CURRENT_TENANT})"
    )
    tenant_of_current_user = (
        f"EXISTS (SELECT 1 FROM memberships m WHERE m.tenant_id = tenants.id AND m.user_id = {CURRENT_USER})"
    )
    return [
        *enable("tenants"),
        policy("tenants", "tenant_isolation", f"id = {CURRENT_TENANT}"),
        policy("tenants", "member_tenants_read", tenant_of_current_user, command="SELECT"),
        policy("tenants", "slug_lookup", f"slug = {AUTH_TENANT_SLUG}", command="SELECT"),
        *enable("users"),
        policy("users", "self", f"id = {CURRENT_USER}"),
        policy("users", "auth_lookup", f"email = {AUTH_EMAIL}"),
        policy("users", "tenant_members_read", member_of_current_tenant, command="SELECT"),
        *tenant_table("memberships"),
        policy("memberships", "own_memberships_read", f"user_id = {CURRENT_USER}", command="SELECT"),
        *tenant_table("api_keys"),
        policy("api_keys", "auth_lookup", f"prefix = {AUTH_KEY_PREFIX}", command="SELECT"),
    ]


def narrow_user_lookups() -> list[str]:
    """Since 0008: the policies on `users` reachable without a tenant grant no more
    than their callers need. The email lookup only reads (0001 let it update and
    delete any account whose email the session named); a user may read, create and
    update their own row, never delete it (deleting an account would cascade into
    every tenant it belongs to)."""
    self_is = f"id = {CURRENT_USER}"
    return [
        "DROP POLICY IF EXISTS auth_lookup ON users",
        "DROP POLICY IF EXISTS self ON users",
        policy("users", "auth_lookup", f"email = {AUTH_EMAIL}", command="SELECT"),
        policy("users", "self_read", self_is, command="SELECT"),
        policy("users", "self_insert", self_is, command="INSERT"),
        policy("users", "self_update", self_is, command="UPDATE"),
    ]


def widen_user_lookups() -> list[str]:
    """The policies of 0001, for a downgrade below 0008."""
    return [
        "DROP POLICY IF EXISTS auth_lookup ON users",
        *(f"DROP POLICY IF EXISTS {name} ON users" for name in ("self_read", "self_insert", "self_update")),
        policy("users", "self", f"id = {CURRENT_USER}"),
        policy("users", "auth_lookup", f"email = {AUTH_EMAIL}"),
    ]


def drop_identity_cross_policies() -> list[str]:
    """Policies that read `memberships` must go before that table can be dropped."""
    return [
        "DROP POLICY IF EXISTS member_tenants_read ON tenants",
        "DROP POLICY IF EXISTS tenant_members_read ON users",
    ]


def grant_app_role(role: str, owner: str, password: str | None = None) -> list[str]:
    """Create the application role if needed and give it DML (never DDL) rights.

    Default privileges make tables added by later migrations usable by the
    app role; their RLS is still each migration's job (a test checks it).
    """
    quoted = _ident(role)
    return [
        "DO $$ BEGIN "
        f"IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {_literal(role)}) THEN "
        f"CREATE ROLE {quoted} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE; "
        "END IF; END $$",
        *([f"ALTER ROLE {quoted} PASSWORD {_literal(password)}"] if password else []),
        f"GRANT USAGE ON SCHEMA public TO {quoted}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {quoted}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {_ident(owner)} IN SCHEMA public "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {quoted}",
    ]


def revoke_app_role(role: str, owner: str) -> list[str]:
    # The role itself is cluster-wide and may serve other databases: keep it.
    quoted = _ident(role)
    return [
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {_ident(owner)} IN SCHEMA public "
        f"REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM {quoted}",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {quoted}",
        f"REVOKE USAGE ON SCHEMA public FROM {quoted}",
    ]


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def run(execute: Callable[[str], object], statements: list[str]) -> None:
    for statement in statements:
        execute(statement)
