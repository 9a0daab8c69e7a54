"""Fixtures for workflow tests: an owner's context, the test tools, an effects
file, and the executor. Tests that take `executor` run three ways: SQLite with
the embedded executor, PostgreSQL with the embedded executor, and PostgreSQL
with two Dramatiq worker processes (`atom worker`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from atom_core.context import Ctx
from atom_core.db.migrate import PROJECT_ROOT
from atom_core.settings import get_settings, reset_settings
from atom_core.tenancy import service as tenancy
from atom_core.workflows import executors
from atom_core.workflows import service as workflows
from tests import workflow_tools
from tests.conftest import PASSWORD, PgDatabase, libpq, unavailable

COMBINATIONS = [("embedded", "embedded"), ("server", "embedded"), ("server", "distributed")]
WORKER_SECRET = "test-secret-shared-with-the-worker-processes"
SETTLED = frozenset({"succeeded", "failed", "cancelled", "waiting"})


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Give tests that use `executor` the three combinations, as a marker (pytest lets
    a parametrize marker, not a direct call, take over the `backend` fixture's params)."""
    if "executor" not in metafunc.fixturenames:
        return
    marked = any("executor" in str(m.args[0]) for m in metafunc.definition.iter_markers("parametrize"))
    if not marked:
        ids = [f"{backend}-{executor}" for backend, executor in COMBINATIONS]
        mark = pytest.mark.parametrize(("backend", "executor"), COMBINATIONS, indirect=True, ids=ids)
        metafunc.definition.add_marker(mark)


@pytest.fixture(scope="session")
def effects_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("effects") / "effects.txt"


@pytest.fixture
def effects_file(effects_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the `effect` and `flaky` tools write; workers share it."""
    effects_path.write_text("")
    monkeypatch.setenv("ATOM_TEST_EFFECTS_FILE", str(effects_path))
    return effects_path


@pytest.fixture
def test_tools(effects_file: Path) -> Iterator[None]:
    workflow_tools.register()
    yield
    workflow_tools.unregister()


class WorkerPool:
    """`atom worker` processes (each its own process group, so a kill takes its children too)."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env, self.log_dir, self.procs = env, log_dir, []

    def start(self) -> subprocess.Popen:
        log = (self.log_dir / f"worker-{len(self.procs)}.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "atom_core.interfaces.cli", "worker", "--processes", "1", "--threads", "8"],
            env=self.env,
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def owner_of(self, pid: int) -> subprocess.Popen | None:
        """The worker whose process group holds `pid` (Dramatiq runs steps in child processes)."""
        try:
            group = os.getpgid(pid)
        except ProcessLookupError:
            return None
        return next((p for p in self.procs if p.pid == group), None)

    def stop_all(self) -> None:
        for proc in self.procs:  # a clean stop closes their database connections
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill(proc)


def wait_for_no_connections(db: PgDatabase, timeout_s: float = 20) -> None:
    """Until no worker is connected, so the session can drop the database."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(libpq(db.admin_url), autocommit=True) as conn:
        while time.monotonic() < deadline:
            query = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
            if conn.execute(query, (db.name,)).fetchone()[0] == 0:
                return
            time.sleep(0.2)


@pytest.fixture(scope="session")
def worker_pool(
    pg_database: PgDatabase | None, redis_url: str | None, effects_path: Path, tmp_path_factory
) -> Iterator[WorkerPool]:
    """Two Dramatiq workers shared by the distributed tests (started on first use)."""
    if pg_database is None or redis_url is None:  # skipped locally like the other server-mode tests, failed in CI
        unavailable("the distributed executor needs PostgreSQL and Redis")
    env = dict(os.environ) | {
        "ATOM_DATABASE_URL": pg_database.app_url,
        "ATOM_DATABASE_ADMIN_URL": pg_database.admin_url,
        "ATOM_REDIS_URL": redis_url,
        "ATOM_SECRET_KEY": WORKER_SECRET,
        "ATOM_EXECUTOR": "distributed",
        "ATOM_PLUGINS": "tests.workflow_plugin",
        "ATOM_TEST_EFFECTS_FILE": str(effects_path),
        "ATOM_WORKFLOW_LEASE_S": "1",
        "ATOM_WORKFLOW_SWEEP_INTERVAL_S": "1",
        "ATOM_ALLOW_PRIVATE_NETWORKS": "true",
        "ATOM_HOME": str(tmp_path_factory.mktemp("worker-home")),
    }
    pool = WorkerPool(env, tmp_path_factory.mktemp("worker-logs"))
    pool.start()
    pool.start()
    yield pool
    pool.stop_all()
    wait_for_no_connections(pg_database)


@pytest.fixture
def executor(request: pytest.FixtureRequest, backend: str, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "distributed":
        pool: WorkerPool = request.getfixturevalue("worker_pool")
        for proc in list(pool.procs):
            if proc.poll() is not None:  # a test killed it: keep two alive
                pool.procs.remove(proc)
                pool.start()
        monkeypatch.setenv("ATOM_EXECUTOR", "distributed")
        monkeypatch.setenv("ATOM_SECRET_KEY", WORKER_SECRET)  # workers decrypt the same provider keys
        reset_settings()
        redis.Redis.from_url(get_settings().queue_url).flushdb()  # no messages left from earlier tests
    monkeypatch.setenv("ATOM_WORKFLOW_LEASE_S", "1")  # heartbeats every 1/3 s notice a cancel fast
    monkeypatch.setenv("ATOM_ALLOW_PRIVATE_NETWORKS", "true")  # the LLM stub is on loopback
    reset_settings()
    return request.param


async def new_owner(name: str = "Acme") -> Ctx:
    email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
    signup = await tenancy.signup(email, PASSWORD, name, client_ip="127.0.0.1")
    return await tenancy.authenticate(signup.token)


@pytest.fixture
async def owner(request: pytest.FixtureRequest, backend: str) -> Ctx:
    if "executor" in request.fixturenames:  # settings (the secret) first, then the account
        request.getfixturevalue("executor")
    return await new_owner()


async def settled(ctx: Ctx, run_id: uuid.UUID, timeout_s: float = 90.0) -> workflows.RunView:
    """The run once nothing more will happen without a decision: in embedded mode
    when this process's executor is idle, in distributed mode when the workers are."""
    if get_settings().executor == "embedded":
        await executors.embedded().idle()
        return await workflows.get_run(ctx, run_id)
    deadline = time.monotonic() + timeout_s
    while True:
        view = await workflows.get_run(ctx, run_id)
        if view.run.status in SETTLED and not any(s.status == "running" for s in view.steps):
            return view
        if time.monotonic() > deadline:
            raise AssertionError(f"run still {view.run.status} after {timeout_s:g} s: {statuses(view)}")
        await asyncio.sleep(0.1)


def statuses(view: workflows.RunView) -> dict[str, str]:
    return {s.step_id: s.status for s in view.steps}
