"""Run the Alembic migrations programmatically (CLI, `make run`, tests)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic.config import Config

from alembic import command
from atom_core.settings import get_settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def alembic_config(url: str | None = None, app_role: str | None = None) -> Config:
    """Config for the project's migrations; `url`/`app_role` override settings."""
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    if url:
        config.attributes["url"] = url
    if app_role:
        config.attributes["app_role"] = app_role
    return config


def upgrade(revision: str = "head", **overrides: str | None) -> None:
    """Blocking: call it from sync code or through `asyncio.to_thread`."""
    get_settings().home.mkdir(parents=True, exist_ok=True)  # the embedded SQLite lives there
    command.upgrade(alembic_config(**overrides), revision)


def downgrade(revision: str = "base", **overrides: str | None) -> None:
    command.downgrade(alembic_config(**overrides), revision)


@lru_cache(maxsize=1)
def current_head() -> str | None:
    """The newest revision this code ships (read from disk once)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()
