"""The `atom` command line: DB commands on both modes, config masking, bad input exits 2 with one line.

CLI commands call `asyncio.run` themselves, so these tests are plain sync functions.
Commands are written as shell lines; `{pw}` stands for a good password, `{long}` for a 500-char word.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from click.testing import Result
from typer.testing import CliRunner

from atom_core.db import dispose_engine
from atom_core.db.migrate import current_head
from atom_core.infra.ratelimit import reset_rate_limiter
from atom_core.interfaces.cli import app
from atom_core.seed import DEMO_EMAIL, DEMO_PASSWORD
from atom_core.settings import reset_settings
from atom_core.tenancy import service as tenancy
from tests.conftest import ATOM_ENV_VARS

T = TypeVar("T")
ATOM_BIN = Path(sys.executable).parent / "atom"
PASSWORD = "violet-anchor-matrix"
runner = CliRunner()


def argv(command: str) -> list[str]:
    return [arg.format(pw=PASSWORD, long="T" * 500) for arg in shlex.split(command)]


def atom(command: str) -> Result:
    reset_settings()  # the environment may have changed since the last command
    result = runner.invoke(app, argv(command))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def ok(command: str) -> str:
    result = atom(command)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout


def assert_one_line_error(result: Result, word: str) -> None:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert word in result.stderr


def call(make: Callable[[], Awaitable[T]]) -> T:
    """Run one service call the way the CLI does: its own loop, its own engine."""

    async def run() -> T:
        try:
            return await make()
        finally:
            await dispose_engine()
            reset_rate_limiter()  # its Redis connections belong to this loop

    return asyncio.run(run())


@pytest.fixture
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty embedded home: no database yet."""
    for name in ATOM_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("ATOM_HOME", str(home))
    monkeypatch.setenv("ATOM_SECRET_KEY", "cli-secret-" + uuid.uuid4().hex)
    monkeypatch.chdir(tmp_path)  # no stray .env
    reset_settings()
    yield home
    reset_settings()


def tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


IDENTITY_TABLES = {"tenants", "users", "memberships", "api_keys"}


def test_db_upgrade_and_guarded_downgrade(fresh_home: Path) -> None:
    assert "database at head" in ok("db upgrade")
    db = fresh_home / "atom.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == current_head()
    assert tables(db) >= IDENTITY_TABLES
    ok("db upgrade")  # idempotent

    assert_one_line_error(atom("db downgrade"), "--yes")
    assert_one_line_error(atom("db downgrade --revision base"), "--yes")
    assert tables(db) >= IDENTITY_TABLES

    ok("db downgrade --revision base --yes")
    assert not IDENTITY_TABLES & tables(db)


def test_seed_demo_is_idempotent(backend: str) -> None:
    first = ok("seed --demo")
    assert "created" in first and DEMO_EMAIL in first
    second = ok("seed --demo")
    assert "already there" in second
    assert [t.name for t in call(lambda: tenancy.tenants_of_email(DEMO_EMAIL))] == ["Demo"]
    login = call(lambda: tenancy.login(DEMO_EMAIL, DEMO_PASSWORD, client_ip="cli-test"))
    assert call(lambda: tenancy.authenticate(login.token)).role == "owner"
    assert_one_line_error(atom("seed"), "--demo")


def test_tenant_create_user_add_and_apikey(backend: str) -> None:
    created = json.loads(ok("tenant create 'Blue Sky' --owner-email Ann@Example.com --owner-password {pw}"))
    assert created["slug"] == "blue-sky"
    assert uuid.UUID(created["tenant_id"]) and uuid.UUID(created["owner_id"])
    login = call(lambda: tenancy.login("ann@example.com", PASSWORD, client_ip="cli-test"))
    owner = call(lambda: tenancy.authenticate(login.token))
    assert (str(owner.tenant_id), owner.role) == (created["tenant_id"], "owner")

    # An existing account owns a second tenant as it is; the slug stays unique.
    again = json.loads(ok("tenant create 'Blue Sky' --owner-email ann@example.com"))
    assert again["owner_id"] == created["owner_id"]
    assert again["slug"] != "blue-sky" and again["slug"].startswith("blue-sky-")

    added = json.loads(ok("user add --tenant blue-sky --email bo@example.com --role admin --password {pw}"))
    assert (added["email"], added["role"]) == ("bo@example.com", "admin")
    bo_tenants = call(lambda: tenancy.tenants_of_email("bo@example.com"))
    assert [(t.slug, t.role) for t in bo_tenants] == [("blue-sky", "admin")]

    key = json.loads(ok("apikey create --tenant blue-sky --role admin --name deploy"))
    assert key["key"].startswith(key["prefix"] + "_")
    ctx = call(lambda: tenancy.authenticate(key["key"]))
    assert (str(ctx.tenant_id), ctx.role, ctx.actor) == (created["tenant_id"], "admin", f"apikey:{key['id']}")
    by_id = json.loads(ok(f"apikey create --tenant {created['tenant_id']}"))
    assert call(lambda: tenancy.authenticate(by_id["key"])).role == "member"


BAD_INPUT = [
    ("user add --tenant acme --email xavier@example.com --role superuser --password {pw}", "role"),
    ("user add --tenant no-such-tenant --email xavier@example.com --password {pw}", "no-such-tenant"),
    ("user add --tenant acme --email xavier@example.com --password short", "password"),
    ("user add --tenant acme --email not-an-email --password {pw}", "email"),
    ("user add --tenant acme --email nobody@example.com", "nobody@example.com"),
    ("tenant create Other --owner-email xavier@example.com --owner-password password123", "owner_password"),
    ("tenant create Other --owner-email xavier@example.com --owner-password Xavier-rocks-99", "owner_password"),
    ("tenant create '  ' --owner-email xavier@example.com --owner-password {pw}", "name"),
    ("tenant create {long} --owner-email xavier@example.com --owner-password {pw}", "name"),
    ("tenant create Other --owner-email x@ --owner-password {pw}", "owner_email"),
    ("tenant create Other --owner-email xavier@example.com", "owner_email"),
    ("tenant create Other --owner-email owner@example.com --owner-password {pw}", "email"),
    ("apikey create --tenant acme --role superuser", "role"),
    ("apikey create --tenant 7d1f5f0e-2b8e-4d8c-9a51-0c6f0d1e2a3b", "no tenant"),
    ("apikey create --tenant acme --name ''", "name"),
]


@pytest.mark.parametrize(("command", "word"), BAD_INPUT, ids=[command for command, _ in BAD_INPUT])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(backend: str, command: str, word: str) -> None:
    ok("tenant create Acme --owner-email owner@example.com --owner-password {pw}")
    assert_one_line_error(atom(command), word)
    assert call(lambda: tenancy.tenants_of_email("xavier@example.com")) == []
    assert [t.slug for t in call(lambda: tenancy.tenants_of_email("owner@example.com"))] == ["acme"]


def test_config_show_masks_secrets(fresh_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shown = ok("config show")
    assert os.environ["ATOM_SECRET_KEY"] not in shown
    assert json.loads(shown)["secret_key"].startswith("********")

    monkeypatch.setenv("ATOM_DATABASE_URL", "postgresql://u:supersecret@127.0.0.1:1/x")
    monkeypatch.setenv("ATOM_DATABASE_ADMIN_URL", "postgresql://owner:adminsecret@127.0.0.1:1/x")
    monkeypatch.setenv("ATOM_REDIS_URL", "redis://:redissecret@127.0.0.1:1/0")
    shown = ok("config show")
    for secret in ("supersecret", "adminsecret", "redissecret", os.environ["ATOM_SECRET_KEY"]):
        assert secret not in shown
    settings = json.loads(shown)
    assert settings["database_url"] == "postgresql+psycopg://u:***@127.0.0.1:1/x"
    assert settings["database_admin_url"] == "postgresql+psycopg://owner:***@127.0.0.1:1/x"


# --- the installed `atom` in a real process ----------------------------------------


def run_atom(command: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ATOM_")}
    clean |= {"ATOM_HOME": str(cwd / "home")} | env
    return subprocess.run(
        [str(ATOM_BIN), *argv(command)], cwd=cwd, env=clean, capture_output=True, text=True, timeout=120
    )


PROCESS_BAD_INPUT = [
    ("config show", {"ATOM_TOKEN_TTL_S": "abc"}, "ATOM_TOKEN_TTL_S"),
    ("config show", {"ATOM_TOKEN_TTL_S": "5"}, "ATOM_TOKEN_TTL_S"),
    ("config show", {"ATOM_PORT": "99999"}, "ATOM_PORT"),
    ("db downgrade", {}, "--yes"),
    ("seed", {}, "--demo"),
    ("tenant create Acme", {}, "--owner-email"),  # a usage error is bad input too
    ("user add --tenant acme --email a@example.com --bogus", {}, "--bogus"),
]


@pytest.mark.parametrize(
    ("command", "env", "word"),
    PROCESS_BAD_INPUT,
    ids=[" ".join([*(f"{k}={v}" for k, v in env.items()), command]) for command, env, _ in PROCESS_BAD_INPUT],
)
def test_real_process_bad_input_exits_2_with_one_line(tmp_path: Path, command: str, env: dict, word: str) -> None:
    result = run_atom(command, tmp_path, **env)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert word in result.stderr


def test_real_process_migrates_and_refuses_an_unknown_tenant(tmp_path: Path) -> None:
    assert run_atom("db upgrade", tmp_path).returncode == 0
    result = run_atom("apikey create --tenant ghost", tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "error: no tenant 'ghost' (tenant)\n"
