"""One migration history for SQLite and PostgreSQL: up, down to base, up again,
and the result matches the models exactly."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import make_url

from atom_core.db import migrate as migrations
from atom_core.db.metadata import target_metadata
from tests.conftest import PG_ADMIN_URL, PG_URL, libpq, unavailable


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database URL (async driver), dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
        return
    if not (PG_URL and PG_ADMIN_URL):
        unavailable("PostgreSQL not configured")
    name = f"atom_mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(libpq(PG_ADMIN_URL), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(libpq(PG_ADMIN_URL), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sync_url(url: str) -> str:
    parsed = make_url(url)
    driver = "sqlite" if parsed.drivername.startswith("sqlite") else "postgresql+psycopg"
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def schema_diff(url: str) -> list:
    engine = sa.create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn), target_metadata)
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    engine = sa.create_engine(sync_url(url))
    try:
        return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def migrate(direction: str, url: str) -> None:
    app_role = make_url(PG_URL).username if PG_URL and url.startswith("postgresql") else None
    getattr(migrations, direction)("head" if direction == "upgrade" else "base", url=url, app_role=app_role)


def test_upgrade_downgrade_upgrade(empty_database: str) -> None:
    migrate("upgrade", empty_database)
    assert table_names(empty_database) == {t.name for t in target_metadata.sorted_tables}
    migrate("downgrade", empty_database)
    assert table_names(empty_database) == set()
    migrate("upgrade", empty_database)
    assert table_names(empty_database) == {t.name for t in target_metadata.sorted_tables}


def test_migrations_match_the_models(empty_database: str) -> None:
    migrate("upgrade", empty_database)
    assert schema_diff(empty_database) == []
