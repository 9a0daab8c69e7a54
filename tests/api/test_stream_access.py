"""Open event streams keep checking their requester's access: a member removed,
an API key revoked or a role lowered mid-stream gets nothing more, and the
stream ends with `access.revoked`. Streams are read from a real server on
loopback (httpx's in-process transport returns a response only once it ends)."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn

from atom_core.interfaces.api.app import create_api
from atom_core.settings import reset_settings
from atom_core.tenancy import service as tenancy
from atom_core.workflows import executors
from tests.llm_stub import Hang, LLMStub

SECRET = "comment-written-after-the-removal"
GATES = {
    "name": "two-gates",
    "steps": [
        {"id": "first", "type": "approval"},
        {"id": "second", "type": "approval", "depends_on": ["first"]},
    ],
}
WAIT_S = 30  # a bound for a hang, not a measurement


@pytest.fixture
async def live(backend: str) -> AsyncIterator[httpx.AsyncClient]:
    """The API served by uvicorn on a loopback port, on this test's event loop."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_api(), lifespan="off", log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    host, port = sock.getsockname()
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=WAIT_S) as http:
        yield http
    server.should_exit = True
    await serving


def check_every(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    monkeypatch.setenv("ATOM_STREAM_ACCESS_CHECK_S", str(seconds))
    reset_settings()


async def join(client: httpx.AsyncClient, owner, account, role: str) -> dict[str, str]:
    """Add `account` to `owner`'s tenant; the headers that act there as them."""
    added = await client.post("/api/v1/members", json={"email": account.email, "role": role}, headers=owner.headers)
    assert added.status_code == 201, added.text
    return account.headers | {"X-Tenant-ID": owner.tenant_id}


async def waiting_run(client: httpx.AsyncClient, owner) -> str:
    created = await client.post("/api/v1/workflows", json={"spec": GATES}, headers=owner.headers)
    assert created.status_code == 201, created.text
    started = await client.post(f"/api/v1/workflows/{created.json()['id']}/runs", json={}, headers=owner.headers)
    run_id = started.json()["run_id"]
    await executors.embedded().idle()
    assert (await client.get(f"/api/v1/runs/{run_id}", headers=owner.headers)).json()["status"] == "waiting"
    return run_id


async def events_until(lines: AsyncIterator[str], last: str | None = None) -> list[tuple[str, str]]:
    """(event, data) pairs read until `last` arrives, or until the stream ends (last=None)."""
    seen: list[tuple[str, str]] = []
    event = None
    async with asyncio.timeout(WAIT_S):
        async for line in lines:
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event:
                seen.append((event, line.removeprefix("data: ")))
                if event == last:
                    return seen
    return seen


async def decide(client: httpx.AsyncClient, owner, run_id: str, step: str) -> None:
    decision = {"approved": True, "comment": SECRET}
    decided = await client.post(f"/api/v1/runs/{run_id}/steps/{step}/decision", json=decision, headers=owner.headers)
    assert decided.status_code == 200, decided.text


async def test_a_removed_viewer_receives_nothing_more_and_the_stream_ends(
    client: httpx.AsyncClient, live: httpx.AsyncClient, make_account, monkeypatch: pytest.MonkeyPatch
) -> None:
    check_every(monkeypatch, 600)  # the removal's membership event, not the interval, must end it
    owner, viewer = await make_account("Acme"), await make_account("Viewer's own")
    headers = await join(client, owner, viewer, "viewer")
    run_id = await waiting_run(client, owner)

    async with live.stream("GET", f"/api/v1/runs/{run_id}/events", headers=headers) as stream:
        lines = stream.aiter_lines()
        before = await events_until(lines, "run.waiting")
        removed = await client.delete(f"/api/v1/members/{viewer.user_id}", headers=owner.headers)
        assert removed.status_code == 204
        await decide(client, owner, run_id, "first")
        after = await events_until(lines)

    assert [e for e, _ in before][-1] == "run.waiting"
    assert [e for e, _ in after] == ["access.revoked"]
    assert SECRET not in "".join(data for _, data in after)
    # The comment was written, for the members who remain: there was something to leak.
    assert SECRET in (await client.get(f"/api/v1/runs/{run_id}", headers=owner.headers)).text


async def test_a_removed_viewer_idle_stream_ends_on_the_membership_event(
    client: httpx.AsyncClient, live: httpx.AsyncClient, make_account, monkeypatch: pytest.MonkeyPatch
) -> None:
    check_every(monkeypatch, 600)
    owner, viewer = await make_account("Acme"), await make_account("Viewer's own")
    headers = await join(client, owner, viewer, "viewer")
    run_id = await waiting_run(client, owner)

    async with live.stream("GET", f"/api/v1/runs/{run_id}/events", headers=headers) as stream:
        lines = stream.aiter_lines()
        await events_until(lines, "run.waiting")
        assert (await client.delete(f"/api/v1/members/{viewer.user_id}", headers=owner.headers)).status_code == 204
        after = await events_until(lines)  # nothing else happens in the run: only access can end it

    assert [e for e, _ in after] == ["access.revoked"]


async def test_a_revoked_api_key_ends_the_stream_on_the_interval(
    client: httpx.AsyncClient, live: httpx.AsyncClient, make_account, monkeypatch: pytest.MonkeyPatch
) -> None:
    check_every(monkeypatch, 0.2)  # a revoked key announces nothing: the interval finds it
    owner = await make_account("Acme")
    created = await client.post("/api/v1/api-keys", json={"name": "watcher", "role": "viewer"}, headers=owner.headers)
    key = created.json()
    run_id = await waiting_run(client, owner)

    headers = {"Authorization": f"Bearer {key['key']}"}
    async with live.stream("GET", f"/api/v1/runs/{run_id}/events", headers=headers) as stream:
        lines = stream.aiter_lines()
        await events_until(lines, "run.waiting")
        assert (await client.delete(f"/api/v1/api-keys/{key['id']}", headers=owner.headers)).status_code == 204
        after = await events_until(lines)

    assert [e for e, _ in after] == ["access.revoked"]


async def test_a_role_change_that_keeps_read_access_keeps_the_stream(
    client: httpx.AsyncClient, live: httpx.AsyncClient, make_account, monkeypatch: pytest.MonkeyPatch
) -> None:
    check_every(monkeypatch, 0.2)
    owner, viewer = await make_account("Acme"), await make_account("Viewer's own")
    headers = await join(client, owner, viewer, "viewer")
    run_id = await waiting_run(client, owner)
    owner_ctx = await tenancy.authenticate(owner.token)

    async with live.stream("GET", f"/api/v1/runs/{run_id}/events", headers=headers) as stream:
        lines = stream.aiter_lines()
        await events_until(lines, "run.waiting")
        await tenancy.change_member_role(owner_ctx, uuid.UUID(viewer.user_id), "member")
        await decide(client, owner, run_id, "first")
        await decide(client, owner, run_id, "second")
        after = await events_until(lines)

    kinds = [e for e, _ in after]
    assert "access.revoked" not in kinds and kinds[-1] == "run.finished"
    assert SECRET in "".join(data for _, data in after)


@pytest.mark.usefixtures("loopback_allowed")
async def test_a_member_removed_during_a_streamed_agent_run_gets_nothing_more_and_the_run_stops(
    client: httpx.AsyncClient,
    live: httpx.AsyncClient,
    make_account,
    llm_stub: LLMStub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from atom_core.llm import providers

    check_every(monkeypatch, 600)
    owner, member = await make_account("Acme"), await make_account("Member's own")
    headers = await join(client, owner, member, "member")
    await providers.set_provider(
        await tenancy.authenticate(owner.token), "openai", api_key="sk-test-0123456789", api_base=llm_stub.base_url
    )
    body = {"slug": "slow", "name": "Slow", "system_prompt": "Answer.", "model": "openai/stub-model"}
    agent = (await client.post("/api/v1/agents", json=body, headers=owner.headers)).json()
    llm_stub.script("stub-model", Hang())

    async with live.stream(
        "POST", f"/api/v1/agents/{agent['id']}/runs", json={"input": "hello", "stream": True}, headers=headers
    ) as stream:
        lines = stream.aiter_lines()
        started = await events_until(lines, "run.started")
        assert (await client.delete(f"/api/v1/members/{member.user_id}", headers=owner.headers)).status_code == 204
        after = await events_until(lines)

    run_id = json.loads(started[-1][1])["run_id"]
    assert [e for e, _ in after] == ["access.revoked"]
    async with asyncio.timeout(WAIT_S):  # the run is cancelled with the stream, not left running
        while (run := (await client.get(f"/api/v1/agent-runs/{run_id}", headers=owner.headers)).json())[
            "status"
        ] == "running":
            await asyncio.sleep(0.05)
    assert run["status"] == "cancelled"
