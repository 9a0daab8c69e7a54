"""One async engine per process and the transaction scopes services use.

On PostgreSQL every transaction starts by setting the row-level-security
variables with `set_config(..., is_local => true)` (the `SET LOCAL` form that
takes bind parameters), so pooled connections never carry a tenant over.
The policies (see `atom_core.db.rls`) read:

- `app.tenant_id`       the tenant whose rows are visible;
- `app.user_id`         lets a user see their own memberships across tenants;
- `app.auth_email`      lets login find one user by email before a tenant is known;
- `app.auth_key_prefix` lets API-key authentication find one key by its prefix;
- `app.auth_tenant_slug` lets administrative tools find one tenant by its slug;
- `app.sweeper`         lets the workflow recovery sweep list active run ids.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from uuid import UUID

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from atom_core.context import Ctx
from atom_core.settings import get_settings

READONLY_OPTION = "atom_readonly"
_engine: AsyncEngine | None = None
_sessions: async_sessionmaker[AsyncSession] | None = None
_sqlite_writer: asyncio.Lock | None = None  # see _writer_turn


def sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")  # SQLite ignores FKs unless asked
    cursor.execute("PRAGMA journal_mode=WAL")  # readers don't block the writer
    # In WAL mode NORMAL syncs the log at checkpoints, not at every commit: a commit
    # survives a crash of the process (the promise workflows make: finished steps
    # never re-run after a kill), only a power loss or OS crash can undo the last
    # few. FULL's fsync per commit was most of a small transaction's time.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=60000")  # writers queue; under heavy load a wait beats a failure
    cursor.close()
    dbapi_connection.isolation_level = None  # the driver must not BEGIN on its own (see _sqlite_begin)


def _sqlite_begin(conn) -> None:
    # A deferred transaction that reads, then writes, gets SQLITE_BUSY at once
    # (no busy wait) when another writer committed in between; under load that
    # is "database is locked". Writing scopes take the write lock up front and
    # queue on busy_timeout instead; read-only scopes stay deferred, so WAL
    # readers never wait for (or hold) the single write lock.
    readonly = conn.get_execution_options().get(READONLY_OPTION, False)
    conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


def build_engine(url: str, **kwargs: object) -> AsyncEngine:
    # A failing statement's error (logged with its traceback) would otherwise list the bound
    # values: tenants' content, token hashes, encrypted keys.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, **kwargs)


def get_engine() -> AsyncEngine:
    global _engine, _sessions, _sqlite_writer
    if _engine is None:
        settings = get_settings()
        if settings.db_url.startswith("sqlite"):
            settings.home.mkdir(parents=True, exist_ok=True)
        _engine = build_engine(settings.db_url)
        _sessions = async_sessionmaker(_engine, class_=AsyncSession, expire_on_commit=False)
        _sqlite_writer = asyncio.Lock()
    return _engine


async def dispose_engine() -> None:
    """Close the pool (end of a CLI command, a test, or a settings change)."""
    global _engine, _sessions, _sqlite_writer
    from atom_core.db.direct import close_direct  # it builds on this module

    await asyncio.to_thread(close_direct)
    if _engine is not None:
        await _engine.dispose()
    _engine = _sessions = _sqlite_writer = None


@asynccontextmanager
async def _scope(rls_vars: dict[str, str], readonly: bool = False) -> AsyncIterator[AsyncSession]:
    engine = get_engine()
    assert _sessions is not None
    async with _writer_turn(engine, readonly), _sessions() as session, session.begin():
        if readonly:
            await session.connection(execution_options={READONLY_OPTION: True})
        if engine.dialect.name == "postgresql":
            await _set_rls_vars(session, rls_vars)
        yield session


def _writer_turn(engine: AsyncEngine, readonly: bool) -> AbstractAsyncContextManager[object]:
    """SQLite has one writer at a time. This process's writing scopes queue here, on the
    event loop, rather than in SQLite's busy handler, where each would hold a pooled
    connection (starving the readers) and poll for the lock, waking up to 100 ms late.
    busy_timeout still arbitrates between processes."""
    if readonly or engine.dialect.name != "sqlite" or _sqlite_writer is None:
        return nullcontext()
    return _sqlite_writer


def sqlite_writer() -> asyncio.Lock:
    """The turn this process's SQLite writers take (see `_writer_turn`)."""
    get_engine()
    assert _sqlite_writer is not None
    return _sqlite_writer


async def _set_rls_vars(session: AsyncSession, rls_vars: dict[str, str]) -> None:
    names = list(rls_vars)
    calls = ", ".join(f"set_config(:n{i}, :v{i}, true)" for i in range(len(names)))
    params = {f"n{i}": name for i, name in enumerate(names)}
    params |= {f"v{i}": rls_vars[name] for i, name in enumerate(names)}
    await session.exec(text(f"SELECT {calls}").bindparams(**params))


def session_scope(ctx: Ctx, *, readonly: bool = False) -> AbstractAsyncContextManager[AsyncSession]:
    """A transaction that sees the context's tenant only. Commits on success.

    `readonly=True` for scopes that never write: on SQLite they do not take
    the write lock (see `_sqlite_begin`).
    """
    return rls_scope(tenant_id=ctx.tenant_id, user_id=ctx.user_id, readonly=readonly)


def rls_scope(
    *,
    tenant_id: UUID | None = None,
    user_id: UUID | None = None,
    email: str = "",
    key_prefix: str = "",
    tenant_slug: str = "",
    sweeper: bool = False,
    readonly: bool = False,
) -> AbstractAsyncContextManager[AsyncSession]:
    """A transaction with explicit RLS variables, for the few flows that act
    before a tenant context exists (signup, login, API-key lookup, seeding).

    There is deliberately no scope that sees every tenant's rows.
    """
    return _scope(
        {
            "app.tenant_id": str(tenant_id or ""),
            "app.user_id": str(user_id or ""),
            "app.auth_email": email,
            "app.auth_key_prefix": key_prefix,
            "app.auth_tenant_slug": tenant_slug,
            "app.sweeper": "on" if sweeper else "",
        },
        readonly,
    )
