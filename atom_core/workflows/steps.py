"""The step function both executors run: claim, do the step's work under a
renewed lease and its timeout, record the outcome, return what to run next.

Step bodies: an agent run, a tool call, or a map of agent runs over a list
(finished items are kept, so a retried map only runs what is left).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from atom_core.agents import runtime, tool_settings
from atom_core.agents import service as agents
from atom_core.agents.tools.builtins import TOOLS
from atom_core.agents.tools.executor import ToolCallRequest, execute
from atom_core.context import Ctx
from atom_core.errors import AtomError, NotFound, RateLimited
from atom_core.infra import concurrency
from atom_core.settings import get_settings
from atom_core.workflows import engine
from atom_core.workflows.engine import Claim, Dispatch

logger = logging.getLogger(__name__)
MAP_PARALLEL_DEFAULT = 4


class StepFailed(Exception):
    def __init__(self, message: str, cost_micros: int = 0):
        super().__init__(message)
        self.message, self.cost_micros = message, cost_micros


class StepStopped(Exception):
    """The run was cancelled, or another worker took the step over."""


@dataclass
class Outcome:
    output: Any
    cost_micros: int = 0


Following = list[Dispatch | Claim]  # what to run next: deliveries, or steps already claimed for this executor
# How many more steps the executor could start now, when it runs what follows itself (see `engine.finish`).
Room = Callable[[], int]


def step_slot(tenant_id: uuid.UUID) -> AbstractAsyncContextManager[None]:
    """One of the tenant's steps in flight (RateLimited at the cap)."""
    return concurrency.slot(tenant_id, "workflow steps", get_settings().workflow_max_concurrent_steps)


async def execute_step(tenant_id: uuid.UUID, run_id: uuid.UUID, step_id: str, *, room: Room | None = None) -> Following:
    """Run one step delivery. Safe to call twice for the same step: only one claim wins.

    `room` (the embedded executor's) lets the step's `finish` claim the steps
    it unblocks for this executor (see `engine.finish`)."""
    try:
        async with step_slot(tenant_id):
            return await _claimed(tenant_id, run_id, step_id, room)
    except RateLimited:  # the tenant's steps in flight are at the cap: try again shortly
        return [Dispatch(tenant_id, run_id, step_id, 1.0)]


async def _claimed(tenant_id: uuid.UUID, run_id: uuid.UUID, step_id: str, room: Room | None) -> Following:
    try:
        claim = await engine.claim(tenant_id, run_id, step_id)
    except NotFound:  # the run was deleted meanwhile: nothing to do, nothing to retry
        return []
    if isinstance(claim, engine.Later):
        return [Dispatch(tenant_id, run_id, step_id, claim.delay_s)]
    if claim is None:
        return []
    return await run_claimed(claim, room)


async def run_claimed(claim: Claim, room: Room | None = None) -> Following:
    """Do a claimed step's work and record its outcome (the caller holds the step's slot)."""
    tenant_id, run_id, step_id = claim.run.tenant_id, claim.run.id, claim.step.id
    timeout_s = claim.step.timeout_s or get_settings().workflow_step_timeout_s
    attempt = claim.attempt
    try:
        async with asyncio.timeout(timeout_s):
            outcome = await _leased(claim, _body(claim))
    except StepStopped:
        return []
    except TimeoutError:
        return await _fail(claim, f"timed out after {timeout_s:g} s")
    except StepFailed as exc:
        return await _fail(claim, exc.message, exc.cost_micros)
    except AtomError as exc:
        return await _fail(claim, exc.message)
    except Exception as exc:  # a bug or an outage: logged in full here, shown to users in one line
        logger.exception("workflow step %s of run %s failed", step_id, run_id)
        return await _fail(claim, f"internal error ({type(exc).__name__})")
    try:
        return await engine.finish(
            tenant_id, run_id, step_id, attempt, outcome.output, outcome.cost_micros, room=room() if room else 0
        )
    except Exception as exc:
        # The result could not be recorded (e.g. the database refused it). Left claimed, the step would
        # run again whenever its lease ran out, and fail the same way, for ever: this attempt fails
        # instead, retried as the step's policy says, its cost counted.
        logger.exception("recording workflow step %s of run %s failed", step_id, run_id)
        return await _fail(
            claim, f"internal error: its result could not be recorded ({type(exc).__name__})", outcome.cost_micros
        )


async def _fail(claim: Claim, error: str, cost_micros: int = 0) -> Following:
    """Record a failed attempt (retried as the step's policy says). If the database refuses
    even that, the message may be why (it can hold a tool's or a provider's text): record it
    with ATOM's own. Only if that fails too (the database is down) is the step left to its lease."""
    tenant_id, run_id, step_id, attempt = claim.run.tenant_id, claim.run.id, claim.step.id, claim.attempt
    try:
        return await engine.fail(tenant_id, run_id, step_id, attempt, error, cost_micros)
    except Exception:
        logger.exception("recording the failure of workflow step %s of run %s failed", step_id, run_id)
        return await engine.fail(tenant_id, run_id, step_id, attempt, UNRECORDABLE, cost_micros)


UNRECORDABLE = "internal error: the step failed and its error could not be recorded"


async def _leased(claim: Claim, work: Any) -> Outcome:
    """Run `work` while renewing the step's lease; stop it if the run is
    cancelled or the lease is lost (the step was handed to another worker)."""
    task = asyncio.ensure_future(work)
    every = get_settings().workflow_lease_s / 3
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=every)
            if done:
                return task.result()
            state = await engine.heartbeat(claim.run.tenant_id, claim.run.id, claim.step.id, claim.attempt)
            if state != "ok":
                raise StepStopped(state)
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _body(claim: Claim) -> Any:
    kind = claim.step.type
    if kind == "tool":
        return _tool(claim)
    if kind == "map":
        return _map(claim)
    return _agent(claim.ctx, claim.step.agent or "", claim.input)


async def _agent(ctx: Ctx, slug: str, text: str) -> Outcome:
    agent = await agents.get_agent_by_slug(ctx, slug)
    run = (await runtime.run_agent(ctx, agent.id, text)).run
    if run.status != "succeeded":
        raise StepFailed(f"agent '{slug}': {run.error or run.status}", run.cost_micros)
    return Outcome(run.output, run.cost_micros)


async def _tool(claim: Claim) -> Outcome:
    step, ctx = claim.step, claim.ctx
    name = step.tool or ""
    call = ToolCallRequest(id=f"wf-{claim.run.id.hex[:8]}-{step.id}", name=name, arguments=claim.input or {})
    env = await tool_settings.tool_env(ctx)
    timeout_s = step.timeout_s or get_settings().workflow_step_timeout_s
    result = await execute(ctx, call, allowed=[name], env=env, timeout_s=timeout_s, registry=TOOLS)
    if not result.ok:
        raise StepFailed(f"tool {name}: {result.error}")
    return Outcome(_structured(result.output))


def _first(group: BaseExceptionGroup) -> BaseException:
    first = group.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first


def _structured(text: str) -> Any:
    """Tools answer in JSON text; templates read it best as data."""
    try:
        return json.loads(text)
    except ValueError:
        return text


async def _map(claim: Claim) -> Outcome:
    """One agent run per item, in parallel up to `max_parallel`; outputs in item order."""
    texts: list[str] = claim.input or []
    done = {int(i): item for i, item in claim.progress.items()}
    gate = asyncio.Semaphore(claim.step.max_parallel or MAP_PARALLEL_DEFAULT)
    run = claim.run

    async def one(index: int, text: str) -> None:
        async with gate:
            outcome = await _agent(claim.ctx, claim.step.agent or "", text)
        kept = await engine.save_progress(
            run.tenant_id, run.id, claim.step.id, claim.attempt, index, outcome.output, outcome.cost_micros
        )
        if not kept:
            raise StepStopped("lost")
        done[index] = {"output": outcome.output, "cost_micros": outcome.cost_micros}

    try:
        async with asyncio.TaskGroup() as group:  # one failed item stops the others
            for index, text in enumerate(texts):
                if index not in done:
                    group.create_task(one(index, text))
    except ExceptionGroup as failures:
        raise _first(failures) from None
    # Item costs were added to the run as each item finished.
    return Outcome([done[i]["output"] for i in range(len(texts))], 0)
