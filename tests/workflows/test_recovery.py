"""Durability: an interrupted step runs again, a finished one never does.

In process: a step left `running` under a dead lease is found by the sweep.
Across processes: a Dramatiq worker is SIGKILLed mid-step and the run
finishes on the other worker, every step's side effect counted exactly once.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select, update

from atom_core.context import Ctx
from atom_core.db import session_scope
from atom_core.interfaces.api.app import create_api
from atom_core.settings import reset_settings
from atom_core.workflows import engine, executors
from atom_core.workflows import service as workflows
from atom_core.workflows.models import ActiveRun, StepRun, WorkflowEvent
from tests.test_cli import atom
from tests.workflow_tools import done, effects
from tests.workflows.conftest import WorkerPool, settled

pytestmark = pytest.mark.usefixtures("test_tools")


def effect_step(step_id: str, *deps: str, sleep_s: float = 0.0) -> dict:
    step = {"id": step_id, "type": "tool", "tool": "effect", "args": {"name": step_id, "sleep_s": sleep_s}}
    return step | ({"depends_on": list(deps)} if deps else {})


async def interrupted_kinds(ctx: Ctx, run_id) -> list[str]:
    async with session_scope(ctx, readonly=True) as session:
        rows = await session.exec(
            select(WorkflowEvent).where(WorkflowEvent.run_id == run_id, WorkflowEvent.type == "step.interrupted")
        )
        return [row.data["step_id"] for row in rows.all()]


async def crashed_run(ctx: Ctx) -> workflows.WorkflowRun:
    """A finished a -> b -> c run put back as if its worker had died while running
    `b`: `a` finished, `b` claimed under a lease nobody renews, `c` not started."""
    spec = {"name": "crash", "steps": [effect_step("a"), effect_step("b", "a"), effect_step("c", "b")]}
    view = await workflows.create_workflow(ctx, spec)
    run = await workflows.start_run(ctx, view.workflow.id, {})
    await executors.embedded().idle()
    async with session_scope(ctx) as session:
        await session.exec(
            update(StepRun)
            .where(StepRun.run_id == run.id, StepRun.step_id == "b")
            .values(status="running", attempts=1, lease_until=engine.now() - timedelta(seconds=1))
        )
        await session.exec(
            update(StepRun)
            .where(StepRun.run_id == run.id, StepRun.step_id == "c")
            .values(status="pending", queued_at=None, attempts=0)
        )
        await session.exec(
            update(workflows.WorkflowRun).where(workflows.WorkflowRun.id == run.id).values(status="running")
        )
        session.add(ActiveRun(run_id=run.id, tenant_id=ctx.tenant_id))
    return run


async def assert_recovered(ctx: Ctx, run_id, effects_file: Path) -> None:
    final = await settled(ctx, run_id)
    assert final.run.status == "succeeded", final.run.error
    assert {s.step_id: s.attempts for s in final.steps} == {"a": 1, "b": 2, "c": 1}
    assert done(effects_file) == {"b": 1, "c": 1}  # `a` was finished: never run again
    assert await interrupted_kinds(ctx, run_id) == ["b"]


async def test_a_step_under_a_dead_lease_is_run_again_by_the_sweep(
    owner: Ctx, effects_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATOM_WORKFLOW_LEASE_S", "1")
    reset_settings()
    run = await crashed_run(owner)
    effects_file.write_text("")
    assert await executors.sweep(grace_s=0) == 1
    await assert_recovered(owner, run.id, effects_file)
    assert await executors.sweep(grace_s=0) == 0  # nothing left to recover


async def test_the_api_process_resumes_interrupted_runs_when_it_starts(
    owner: Ctx, effects_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATOM_WORKFLOW_LEASE_S", "1")
    reset_settings()
    run = await crashed_run(owner)
    effects_file.write_text("")
    app = create_api()
    async with app.router.lifespan_context(app):  # what `atom serve` / `atom api` runs at startup
        for _ in range(200):
            if (await workflows.get_run(owner, run.id)).run.status == "succeeded":
                break
            await asyncio.sleep(0.05)
    await assert_recovered(owner, run.id, effects_file)


@pytest.mark.parametrize(("backend", "executor"), [("server", "distributed")], indirect=True)
async def test_a_killed_worker_s_step_finishes_on_the_other_worker_exactly_once(
    owner: Ctx, executor: str, effects_file: Path, worker_pool: WorkerPool
) -> None:
    steps = [effect_step("s1"), effect_step("s2", "s1", sleep_s=4), effect_step("s3", "s2"), effect_step("s4", "s3")]
    view = await workflows.create_workflow(owner, {"name": "kill", "steps": steps})
    run = await workflows.start_run(owner, view.workflow.id, {})

    victim_pid = await _wait_for_start(effects_file, "s2")
    victim = worker_pool.owner_of(victim_pid)
    assert victim is not None, "the step ran outside the worker pool"
    worker_pool.kill(victim)  # SIGKILL to the worker's whole process group, mid-step

    final = await settled(owner, run.id, timeout_s=120)
    assert final.run.status == "succeeded", final.run.error
    assert done(effects_file) == {"s1": 1, "s2": 1, "s3": 1, "s4": 1}  # each side effect exactly once
    finisher = {name: pid for kind, name, pid, _ in effects(effects_file) if kind == "done"}["s2"]
    assert finisher != victim_pid
    assert {s.step_id: s.attempts for s in final.steps} == {"s1": 1, "s2": 2, "s3": 1, "s4": 1}
    assert await interrupted_kinds(owner, run.id) == ["s2"]
    status = atom("worker --status")  # nothing was dead-lettered on the way
    assert status.exit_code == 0, status.stderr
    assert re.fullmatch(r"ready \d+ · delayed \d+ · dead 0", status.stdout.strip()), status.stdout


async def _wait_for_start(path: Path, name: str, timeout_s: float = 60) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for kind, step, pid, _ in effects(path):
            if (kind, step) == ("start", name):
                return pid
        await asyncio.sleep(0.05)
    raise AssertionError(f"step {name} never started")


async def test_steps_in_flight_are_bounded_per_tenant(
    owner: Ctx, effects_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs of one tenant share its cap; the steps over it wait their turn."""
    monkeypatch.setenv("ATOM_WORKFLOW_MAX_CONCURRENT_STEPS", "3")
    reset_settings()
    spec = {"name": "wide", "steps": [effect_step(f"s{i}", sleep_s=0.3) for i in range(4)]}
    view = await workflows.create_workflow(owner, spec)
    runs = [await workflows.start_run(owner, view.workflow.id, {}) for _ in range(2)]
    for run in runs:
        assert (await settled(owner, run.id)).run.status == "succeeded"
    assert sum(done(effects_file).values()) == 8
    marks = sorted((at, 1 if kind == "start" else -1) for kind, _, _, at in effects(effects_file))
    running = peak = 0
    for _, change in marks:
        running += change
        peak = max(peak, running)
    assert peak == 3
