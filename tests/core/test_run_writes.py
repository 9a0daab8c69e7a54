"""Run writes committed in groups: one transaction for concurrent writes of a tenant,
a bad write fails alone, tenants never share a transaction, a cancelled caller's
write still commits."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from atom_core.agents import run_writes
from atom_core.agents.runs import AgentRun
from atom_core.db import get_engine, session_scope
from atom_core.tenancy import service as tenancy
from tests.conftest import PASSWORD


async def new_ctx(name: str):
    signup = await tenancy.signup(f"{uuid.uuid4().hex[:8]}@example.com", PASSWORD, name, client_ip="t")
    return await tenancy.authenticate(signup.token)


def a_run(ctx, **fields) -> AgentRun:
    return AgentRun(tenant_id=ctx.tenant_id, agent_slug="w", session_id="s", input="hi", **fields)


async def stored(ctx) -> set[uuid.UUID]:
    async with session_scope(ctx, readonly=True) as session:
        return set((await session.exec(select(AgentRun.id).where(AgentRun.tenant_id == ctx.tenant_id))).all())


@pytest.fixture
async def ctx(backend: str):
    return await new_ctx("Writes")


async def test_concurrent_writes_share_one_transaction(ctx) -> None:
    commits: list[object] = []
    event.listen(get_engine().sync_engine, "commit", commits.append)
    runs = [a_run(ctx) for _ in range(50)]
    await asyncio.gather(*(run_writes.commit(ctx, run_writes.Write(add=[run])) for run in runs))
    assert len(commits) == 1
    assert await stored(ctx) == {run.id for run in runs}

    finished = [{"id": run.id, "status": "succeeded", "output": f"out {i}"} for i, run in enumerate(runs)]
    await asyncio.gather(*(run_writes.commit(ctx, run_writes.Write(update=(AgentRun, f))) for f in finished))
    async with session_scope(ctx, readonly=True) as session:
        rows = (await session.exec(select(AgentRun).where(AgentRun.tenant_id == ctx.tenant_id))).all()
    assert {(r.id, r.status, r.output) for r in rows} == {(f["id"], "succeeded", f["output"]) for f in finished}


async def test_a_bad_write_fails_alone(ctx) -> None:
    good = [a_run(ctx) for _ in range(3)]
    bad = a_run(ctx, agent_id=uuid.uuid4())  # no such agent: the foreign key refuses it
    results = await asyncio.gather(
        *(run_writes.commit(ctx, run_writes.Write(add=[run])) for run in [good[0], bad, *good[1:]]),
        return_exceptions=True,
    )
    assert results[0] is None and results[2:] == [None, None]
    assert isinstance(results[1], IntegrityError)
    assert await stored(ctx) == {run.id for run in good}


async def test_tenants_never_share_a_transaction(ctx) -> None:
    other = await new_ctx("Other")
    ours, theirs = [a_run(ctx) for _ in range(5)], [a_run(other) for _ in range(5)]
    mixed = [(ctx, r) for r in ours] + [(other, r) for r in theirs]
    await asyncio.gather(*(run_writes.commit(c, run_writes.Write(add=[r])) for c, r in mixed))
    # On PostgreSQL row-level security would refuse another tenant's row in our transaction.
    assert await stored(ctx) == {r.id for r in ours}
    assert await stored(other) == {r.id for r in theirs}


async def test_a_cancelled_callers_write_still_commits(ctx) -> None:
    first, second = a_run(ctx), a_run(ctx)
    caller = asyncio.create_task(run_writes.commit(ctx, run_writes.Write(add=[first])))
    await asyncio.sleep(0)  # it has queued its write
    caller.cancel()
    await run_writes.commit(ctx, run_writes.Write(add=[second]))  # committed after (or with) the first
    assert caller.cancelled()
    assert await stored(ctx) == {first.id, second.id}
