"""Row-level security on PostgreSQL, seen through the application role.

These run only on the server backend: SQLite has no RLS (the services'
own tenant filters, tested on both backends, are the first lock).
"""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg.rows import dict_row

from atom_core.agents import runtime, tool_settings
from atom_core.agents import service as agents
from atom_core.db.metadata import target_metadata
from atom_core.llm import pricing, providers
from atom_core.tenancy import apikeys
from atom_core.tenancy import service as tenancy
from atom_core.workflows import service as workflows
from tests.conftest import PASSWORD, PgDatabase, libpq

pytestmark = pytest.mark.parametrize("backend", ["server"], indirect=True)

# Tables whose rows belong to one tenant, and the column that says which.
IDENTITY_TENANT_COLUMNS = {"tenants": "id"}


def tenant_owned_tables() -> dict[str, str]:
    """Every table of the models that carries a tenant: name -> tenant column."""
    owned = {t.name: "tenant_id" for t in target_metadata.sorted_tables if "tenant_id" in t.columns}
    return owned | IDENTITY_TENANT_COLUMNS


def tables_missing_rls(conn: psycopg.Connection) -> list[str]:
    """Tables with a tenant_id column (or the tenants table) lacking ENABLE, FORCE
    or a policy on app.tenant_id. The check a new migration must pass."""
    rows = conn.execute(
        """
        SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
               EXISTS (SELECT 1 FROM pg_policies p WHERE p.schemaname = 'public' AND p.tablename = c.relname
                       AND p.qual LIKE '%app.tenant_id%') AS has_policy
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind = 'r'
          AND (c.relname = 'tenants' OR EXISTS (
                SELECT 1 FROM information_schema.columns col
                WHERE col.table_schema = 'public' AND col.table_name = c.relname AND col.column_name = 'tenant_id'))
        """
    ).fetchall()
    return sorted(name for name, enabled, forced, has_policy in rows if not (enabled and forced and has_policy))


async def seed_two_tenants() -> tuple[uuid.UUID, uuid.UUID]:
    """Rows for two tenants in every tenant-owned table."""
    ids = []
    for name in ("Tenant A", "Tenant B"):
        email = f"{uuid.uuid4().hex[:8]}@example.com"
        signup = await tenancy.signup(email, PASSWORD, name, client_ip="127.0.0.1")
        ctx = await tenancy.authenticate(signup.token)
        await apikeys.create(ctx, "key")  # api_keys + audit_events
        helper = await agents.create_agent(ctx, agents.AgentInput(slug="helper", name="Helper"))
        await tool_settings.set_http_allowed_hosts(ctx, [f"{name[-1].lower()}.example.com"])
        await runtime.run_agent(ctx, helper.id, "hello")  # agent_runs, agent_messages, traces, spans (offline)
        await providers.set_provider(ctx, "openai", api_key=f"sk-{name[-1]}-" + uuid.uuid4().hex)
        await pricing.set_price(ctx, "openai/custom-model", "0.15", "0.60")
        await _seed_workflow(ctx)
        ids.append(signup.tenant_id)
    return ids[0], ids[1]


async def _seed_workflow(ctx) -> None:
    """workflows, workflow_versions, workflow_runs, workflow_steps, workflow_events and
    workflow_active_runs (the run waits for approval, so it stays active)."""
    spec = {"name": "wf", "steps": [{"id": "review", "type": "approval"}]}
    view = await workflows.create_workflow(ctx, spec)
    run = await workflows.start_run(ctx, view.workflow.id, {})
    assert (await workflows.get_run(ctx, run.id)).run.status == "waiting"


def app_connection(db: PgDatabase) -> psycopg.Connection:
    return psycopg.connect(libpq(db.app_url), row_factory=dict_row)


def set_tenant(conn: psycopg.Connection, tenant_id: uuid.UUID | None) -> None:
    conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant_id or ""),))


async def test_app_role_cannot_bypass_rls(backend: str, pg_database: PgDatabase) -> None:
    with app_connection(pg_database) as conn:
        role = conn.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user").fetchone()
        owned = conn.execute(
            "SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'public' AND tableowner = current_user"
        ).fetchone()
    assert role == {"rolsuper": False, "rolbypassrls": False}
    assert owned["n"] == 0


async def test_every_tenant_owned_table_has_forced_rls(backend: str, pg_database: PgDatabase) -> None:
    with psycopg.connect(libpq(pg_database.admin_url)) as conn:
        assert tables_missing_rls(conn) == []
        present = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert set(tenant_owned_tables()) <= present


async def test_rls_check_catches_a_table_without_policy(backend: str, pg_database: PgDatabase) -> None:
    with psycopg.connect(libpq(pg_database.admin_url)) as conn:
        conn.execute("CREATE TABLE forgotten (id uuid PRIMARY KEY, tenant_id uuid NOT NULL)")
        try:
            assert tables_missing_rls(conn) == ["forgotten"]
            conn.execute("ALTER TABLE forgotten ENABLE ROW LEVEL SECURITY")
            assert tables_missing_rls(conn) == ["forgotten"]  # not forced, no policy: still caught
        finally:
            conn.rollback()


async def test_raw_select_sees_only_the_current_tenant(backend: str, pg_database: PgDatabase) -> None:
    tenant_a, tenant_b = await seed_two_tenants()
    with app_connection(pg_database) as conn:
        for table, column in tenant_owned_tables().items():
            set_tenant(conn, tenant_a)
            rows = conn.execute(f"SELECT * FROM {table}").fetchall()
            assert rows, f"{table}: tenant A should see its own rows"
            assert {row[column] for row in rows} == {tenant_a}, f"{table} leaks another tenant's rows"
            conn.rollback()

            set_tenant(conn, None)
            assert conn.execute(f"SELECT * FROM {table}").fetchall() == [], f"{table}: rows visible with no tenant"
            conn.rollback()
        assert tenant_b != tenant_a


async def test_users_are_visible_only_through_membership(backend: str, pg_database: PgDatabase) -> None:
    tenant_a, _ = await seed_two_tenants()
    with app_connection(pg_database) as conn:
        set_tenant(conn, tenant_a)
        emails = [r["email"] for r in conn.execute("SELECT email FROM users").fetchall()]
        members = conn.execute("SELECT count(*) AS n FROM memberships").fetchone()["n"]
        conn.rollback()
        assert len(emails) == members == 1
        assert conn.execute("SELECT * FROM users").fetchall() == []


async def test_writing_another_tenants_id_is_rejected(backend: str, pg_database: PgDatabase) -> None:
    tenant_a, tenant_b = await seed_two_tenants()
    with app_connection(pg_database) as conn:
        for table, column in tenant_owned_tables().items():
            set_tenant(conn, tenant_a)
            row = conn.execute(f"SELECT * FROM {table} LIMIT 1").fetchone()
            copy = _unique_copy(row) | {column: tenant_b}
            names = ", ".join(copy)
            marks = ", ".join(["%s"] * len(copy))
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
                conn.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", [_adapt(v) for v in copy.values()])
            conn.rollback()

            set_tenant(conn, tenant_a)
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
                conn.execute(f"UPDATE {table} SET {column} = %s", (tenant_b,))
            conn.rollback()


def _unique_copy(row: dict) -> dict:
    """The row with fresh values in its unique columns (so only RLS can object)."""
    fresh = dict(row)
    if "id" in fresh:  # workflow_active_runs is keyed by run_id (RLS is checked before uniqueness)
        fresh["id"] = uuid.uuid4()
    for name in ("slug", "prefix", "email"):
        if name in fresh:
            fresh[name] = f"{fresh[name]}-{uuid.uuid4().hex[:6]}"
    return fresh


def _adapt(value: object) -> object:
    return psycopg.types.json.Jsonb(value) if isinstance(value, dict | list) else value


async def test_the_recovery_sweep_lists_active_run_ids_and_nothing_else(backend: str, pg_database: PgDatabase) -> None:
    tenant_a, tenant_b = await seed_two_tenants()
    with app_connection(pg_database) as conn:
        conn.execute("SELECT set_config('app.sweeper', 'on', true)")
        active = conn.execute("SELECT tenant_id FROM workflow_active_runs").fetchall()
        assert {row["tenant_id"] for row in active} == {tenant_a, tenant_b}
        for table in tenant_owned_tables():
            if table != "workflow_active_runs":
                assert conn.execute(f"SELECT * FROM {table}").fetchall() == [], f"{table} visible to the sweep"
        assert conn.execute("DELETE FROM workflow_active_runs RETURNING run_id").fetchall() == []  # read only
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute(
                "INSERT INTO workflow_active_runs (run_id, tenant_id, since) VALUES (%s, %s, now())",
                (uuid.uuid4(), tenant_a),
            )
        conn.rollback()


async def test_the_email_lookup_only_reads(backend: str, pg_database: PgDatabase) -> None:
    """`app.auth_email` finds an account for sign-in; it changes or deletes nothing."""
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    await tenancy.signup(email, PASSWORD, "Victim", client_ip="127.0.0.1")
    with app_connection(pg_database) as conn:
        conn.execute("SELECT set_config('app.auth_email', %s, true)", (email,))
        assert len(conn.execute("SELECT id FROM users WHERE email = %s", (email,)).fetchall()) == 1
        assert (
            conn.execute("UPDATE users SET password_hash = 'x' WHERE email = %s RETURNING id", (email,)).fetchall()
            == []
        )
        assert conn.execute("DELETE FROM users WHERE email = %s RETURNING id", (email,)).fetchall() == []
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute(
                "INSERT INTO users (id, email, created_at) VALUES (%s, %s, now())",
                (uuid.uuid4(), f"other-{email}"),
            )
        conn.rollback()


async def test_a_user_reads_and_updates_their_own_row_but_never_deletes_it(
    backend: str, pg_database: PgDatabase
) -> None:
    signup = await tenancy.signup(f"{uuid.uuid4().hex[:8]}@example.com", PASSWORD, "Self", client_ip="127.0.0.1")
    with app_connection(pg_database) as conn:
        conn.execute("SELECT set_config('app.user_id', %s, true)", (str(signup.user_id),))
        assert conn.execute("SELECT id FROM users").fetchall() == [{"id": signup.user_id}]
        assert len(conn.execute("UPDATE users SET tokens_valid_after = now() RETURNING id").fetchall()) == 1
        assert conn.execute("DELETE FROM users RETURNING id").fetchall() == []
        conn.rollback()


async def test_narrow_lookups_grant_only_select(backend: str, pg_database: PgDatabase) -> None:
    """Every policy keyed on a lookup variable (no tenant) is read-only, except a
    user's own row (created at signup, updated by "sign out everywhere")."""
    with psycopg.connect(libpq(pg_database.admin_url)) as conn:
        rows = conn.execute(
            "SELECT tablename, policyname, cmd FROM pg_policies WHERE schemaname = 'public'"
            " AND coalesce(qual, with_check) NOT LIKE '%app.tenant_id%'"
        ).fetchall()
    writable = sorted((table, name, cmd) for table, name, cmd in rows if cmd != "SELECT")
    assert writable == [("users", "self_insert", "INSERT"), ("users", "self_update", "UPDATE")]
    assert {("users", "auth_lookup"), ("api_keys", "auth_lookup"), ("tenants", "slug_lookup")} <= {
        (table, name) for table, name, _ in rows
    }
