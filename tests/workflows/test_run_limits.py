"""A tenant's workflow runs are bounded (unfinished runs, new runs a minute), and
the recovery sweep's cost does not grow with runs parked waiting for a decision."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import event

from atom_core.context import Ctx
from atom_core.db.session import get_engine
from atom_core.settings import Settings, reset_settings
from atom_core.workflows import executors
from atom_core.workflows import service as workflows
from tests.workflows.conftest import new_owner

pytestmark = pytest.mark.usefixtures("test_tools")

PARKED = {"name": "parked", "steps": [{"id": "review", "type": "approval"}]}
QUICK = {"name": "quick", "steps": [{"id": "sum", "type": "tool", "tool": "calculator", "args": {"expression": "1+1"}}]}


async def create(client: httpx.AsyncClient, account, spec: dict) -> str:
    response = await client.post("/api/v1/workflows", json={"spec": spec}, headers=account.headers)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def start(client: httpx.AsyncClient, account, workflow_id: str) -> httpx.Response:
    return await client.post(f"/api/v1/workflows/{workflow_id}/runs", json={"input": {}}, headers=account.headers)


def assert_429_naming(response: httpx.Response, setting: str) -> None:
    assert response.status_code == 429, response.text
    assert int(response.headers["Retry-After"]) >= 1
    error = response.json()["error"]
    assert error["code"] == "rate_limited" and setting in error["message"], error


async def run_count(client: httpx.AsyncClient, account) -> int:
    return len((await client.get("/api/v1/runs", params={"limit": 200}, headers=account.headers)).json()["items"])


async def test_a_tenant_is_refused_runs_past_its_unfinished_run_cap(
    client: httpx.AsyncClient, make_account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATOM_WORKFLOW_MAX_ACTIVE_RUNS", "3")
    reset_settings()
    alpha, beta = await make_account("Alpha"), await make_account("Beta")
    parked = await create(client, alpha, PARKED)
    runs = [await start(client, alpha, parked) for _ in range(3)]
    assert [r.status_code for r in runs] == [202, 202, 202]
    await executors.embedded().idle()

    assert_429_naming(await start(client, alpha, parked), "ATOM_WORKFLOW_MAX_ACTIVE_RUNS")
    rerun = await client.post(
        f"/api/v1/runs/{runs[0].json()['run_id']}/rerun", json={"from_step": "review"}, headers=alpha.headers
    )
    assert_429_naming(rerun, "ATOM_WORKFLOW_MAX_ACTIVE_RUNS")
    assert await run_count(client, alpha) == 3  # nothing half-started
    assert (await start(client, beta, await create(client, beta, PARKED))).status_code == 202  # per tenant

    cancelled = await client.post(f"/api/v1/runs/{runs[0].json()['run_id']}/cancel", headers=alpha.headers)
    assert cancelled.status_code == 200, cancelled.text
    assert (await start(client, alpha, parked)).status_code == 202  # a finished run makes room


async def test_a_tenant_is_refused_runs_started_faster_than_its_rate(
    client: httpx.AsyncClient, make_account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATOM_WORKFLOW_RUN_RATE_LIMIT", "2/minute")
    reset_settings()
    alpha, beta = await make_account("Alpha"), await make_account("Beta")
    quick = await create(client, alpha, QUICK)
    assert [(await start(client, alpha, quick)).status_code for _ in range(2)] == [202, 202]
    assert_429_naming(await start(client, alpha, quick), "ATOM_WORKFLOW_RUN_RATE_LIMIT")
    await executors.embedded().idle()
    assert await run_count(client, alpha) == 2
    assert (await start(client, beta, await create(client, beta, QUICK))).status_code == 202


def test_a_rate_that_does_not_parse_is_refused_at_startup() -> None:
    with pytest.raises(ValidationError, match="workflow_run_rate_limit"):
        Settings(workflow_run_rate_limit="plenty")
    assert Settings(workflow_run_rate_limit="").workflow_run_rate_limit == ""


@contextmanager
def statements() -> Iterator[list[str]]:
    """The SQL statements the application's engine sends while the block runs."""
    seen: list[str] = []
    engine = get_engine().sync_engine

    def count(conn, cursor, statement, *args) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


async def park(ctx: Ctx, workflow_id: uuid.UUID, n: int) -> None:
    for _ in range(n):
        await workflows.start_run(ctx, workflow_id, {})
    await executors.embedded().idle()


async def test_the_sweep_does_not_grow_with_waiting_runs(owner: Ctx) -> None:
    other = await new_owner("Other")
    ids = {}
    for ctx in (owner, other):
        ids[ctx.tenant_id] = (await workflows.create_workflow(ctx, PARKED)).workflow.id
        await park(ctx, ids[ctx.tenant_id], 2)
    await executors.sweep(grace_s=0)  # warm: caches, pools
    with statements() as few:
        assert await executors.sweep(grace_s=0) == 0

    await park(owner, ids[owner.tenant_id], 20)
    with statements() as many:
        assert await executors.sweep(grace_s=0) == 0
    assert len(many) == len(few)
