"""Alembic environment: async engines, one history for SQLite and PostgreSQL.

Migrations run as the owner role (`ATOM_DATABASE_ADMIN_URL`); the role named
in `ATOM_DATABASE_URL` is the application role that row-level security binds.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import pool
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from alembic import context
from atom_core.db.metadata import target_metadata
from atom_core.settings import get_settings

config = context.config


def migration_url() -> str:
    return config.attributes.get("url") or get_settings().migration_url


def app_role() -> str | None:
    """The role the application connects as (granted DML, bound by RLS)."""
    if "app_role" in config.attributes:
        return config.attributes["app_role"]
    return get_settings().app_db_role


def app_role_password() -> str | None:
    if "app_role" in config.attributes:
        return None
    settings = get_settings()
    return make_url(settings.db_url).password if settings.is_postgres else None


def do_run_migrations(connection: Connection) -> None:
    config.attributes["resolved_app_role"] = app_role()
    config.attributes["resolved_app_password"] = app_role_password()
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    engine = create_async_engine(migration_url(), poolclass=pool.NullPool, hide_parameters=True)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=migration_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(run_async_migrations())
