"""Run state transitions: the durable part of the workflow engine.

Every transition is one transaction that first locks the run's row (`FOR
UPDATE` on PostgreSQL; SQLite's `BEGIN IMMEDIATE` serialises writers), so two
steps finishing at once on two workers can never both miss the step that
joins them. A step's output, its status, the scheduling of its successors and
the events that report them are committed together; the executor is handed
the successors only after the commit (a lost hand-off is found by `orphans`).

A claimed step holds a lease its worker renews (`heartbeat`). A step whose
lease ran out was interrupted (its worker died): the next claim runs it again,
while finished steps are never run twice.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import delete, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from atom_core.context import Ctx
from atom_core.db import session_scope
from atom_core.db.session import rls_scope
from atom_core.errors import NotFound
from atom_core.infra import events
from atom_core.settings import get_settings
from atom_core.workflows import spec as specs
from atom_core.workflows import templates
from atom_core.workflows.models import (
    RUN_ACTIVE,
    STEP_DONE,
    STEP_FINAL,
    ActiveRun,
    StepRun,
    WorkflowEvent,
    WorkflowRun,
    WorkflowVersion,
)

logger = logging.getLogger(__name__)
MAP_ITEMS_MAX = 1000
BACKOFF_MAX_S = 3600.0


@dataclass(frozen=True)
class Dispatch:
    """Run this step of this run, after `delay_s` seconds."""

    tenant_id: uuid.UUID
    run_id: uuid.UUID
    step_id: str
    delay_s: float = 0.0


@dataclass
class Claim:
    """A step this worker now owns, with its rendered input."""

    run: WorkflowRun
    step: specs.StepSpec
    attempt: int
    input: Any
    progress: dict[str, Any]

    @property
    def ctx(self) -> Ctx:
        """Steps act as the run's starter, with the role they had when starting it."""
        return Ctx(tenant_id=self.run.tenant_id, user_id=self.run.user_id, role=self.run.role, actor=self.run.actor)


@dataclass
class RunState:
    """A run, its spec and its step rows, loaded under the run's lock."""

    session: AsyncSession
    run: WorkflowRun
    spec: specs.WorkflowSpec
    steps: dict[str, StepRun]
    published: list[dict[str, Any]] = field(default_factory=list)

    def emit(self, kind: str, **data: Any) -> None:
        self.run.event_seq += 1
        event = WorkflowEvent(
            tenant_id=self.run.tenant_id, run_id=self.run.id, seq=self.run.event_seq, type=kind, data=data
        )
        self.session.add(event)
        self.published.append({"id": event.seq, "type": kind, "run_id": str(self.run.id), **data})


def system_ctx(tenant_id: uuid.UUID) -> Ctx:
    return Ctx(tenant_id=tenant_id, user_id=None, role="owner", actor="system:workflows")


def now() -> datetime:
    return datetime.now(UTC)


def run_topic(run_id: uuid.UUID) -> str:
    return f"workflow-runs:{run_id}"


async def load_spec(session: AsyncSession, run: WorkflowRun) -> specs.WorkflowSpec:
    """Versions never change, so a parsed spec is cached by (tenant, workflow, version)."""
    key = (run.tenant_id, run.workflow_id, run.version)
    cached = _spec_cache.get(key)
    if cached is not None:
        return cached
    query = select(WorkflowVersion).where(
        WorkflowVersion.tenant_id == run.tenant_id,
        WorkflowVersion.workflow_id == run.workflow_id,
        WorkflowVersion.version == run.version,
    )
    version = (await session.exec(query)).one()
    parsed = specs.WorkflowSpec.model_validate(version.spec)
    if len(_spec_cache) > 512:
        _spec_cache.clear()
    _spec_cache[key] = parsed
    return parsed


_spec_cache: dict[tuple[uuid.UUID, uuid.UUID, int], specs.WorkflowSpec] = {}


@asynccontextmanager
async def transition(tenant_id: uuid.UUID, run_id: uuid.UUID) -> AsyncIterator[RunState]:
    """Load and lock a run for one transition; publish its events after commit."""
    async with session_scope(system_ctx(tenant_id)) as session:
        query = select(WorkflowRun).where(WorkflowRun.tenant_id == tenant_id, WorkflowRun.id == run_id)
        run = (await session.exec(query.with_for_update())).first()
        if run is None:
            raise NotFound("run not found", field="run_id")
        rows = await session.exec(select(StepRun).where(StepRun.tenant_id == tenant_id, StepRun.run_id == run_id))
        state = RunState(session, run, await load_spec(session, run), {row.step_id: row for row in rows})
        yield state
    await publish(state)


async def publish(state: RunState) -> None:
    """Wake the run's event streams. The log in the database is the truth; a
    lost publish only delays a stream until its next poll."""
    if not state.published:
        return
    bus, topic = events.get_bus(), events.channel(state.run.tenant_id, run_topic(state.run.id))
    for event in state.published:
        try:
            await bus.publish(topic, event)
        except Exception:  # the bus is best effort; the transition is committed
            logger.warning("could not publish workflow event %s", event["type"], exc_info=True)


# ------------------------------------------------------------------ scheduling


def context(state: RunState) -> dict[str, Any]:
    """What templates see: the run's inputs and every step's output and status."""
    steps = {sid: {"output": row.output, "status": row.status} for sid, row in state.steps.items()}
    return {"inputs": state.run.input, "steps": steps}


def _readiness(state: RunState, step: specs.StepSpec) -> str:
    """`ready`, `skip`, `blocked` (a dependency failed) or `wait`."""
    statuses = [state.steps[dep].status for dep in step.depends_on]
    if any(s in ("failed", "cancelled") for s in statuses):
        return "blocked"
    if not all(s in STEP_DONE for s in statuses):
        return "wait"
    skipped = any(state.steps[dep].status == "skipped" or _said_no(state, dep) for dep in step.depends_on)
    return "skip" if skipped else "ready"


def _said_no(state: RunState, step_id: str) -> bool:
    """A condition that evaluated false skips its dependents."""
    return _spec_steps(state.spec)[step_id].type == "condition" and not state.steps[step_id].output


def _spec_steps(spec: specs.WorkflowSpec) -> dict[str, specs.StepSpec]:
    return {s.id: s for s in spec.steps}


def _in_flight(state: RunState) -> int:
    return sum(1 for r in state.steps.values() if r.status == "running" or (r.status == "pending" and r.queued_at))


async def advance(state: RunState) -> list[Dispatch]:
    """Skip, pause, evaluate or queue every step that can move, then settle the run."""
    if state.run.status not in RUN_ACTIVE:
        return []
    dispatches: list[Dispatch] = []
    limit = state.run.max_parallel
    moved = True
    while moved:  # a condition decided or a step skipped may free its dependents at once
        moved = False
        for step in state.spec.steps:
            row = state.steps[step.id]
            if row.status != "pending" or row.queued_at is not None:
                continue
            verdict = _readiness(state, step)
            if verdict == "skip":
                finish_row(row, "skipped")
                state.emit("step.skipped", step_id=step.id)
                moved = True
            elif verdict == "ready" and step.type == "approval":
                row.status = "waiting"
                state.emit("step.waiting", step_id=step.id)
                moved = True
            elif verdict == "ready" and step.type == "condition":
                _decide_condition(state, step, row)
                moved = True
            elif verdict == "ready" and _in_flight(state) < limit:
                row.queued_at = row.due_at = now()
                dispatches.append(Dispatch(state.run.tenant_id, state.run.id, step.id))
    await settle(state)
    return dispatches if state.run.status in RUN_ACTIVE else []


def _decide_condition(state: RunState, step: specs.StepSpec, row: StepRun) -> None:
    try:
        value = bool(templates.evaluate(step.when or "", context(state)))
    except templates.TemplateError as exc:
        finish_row(row, "failed", error=f"when: {exc}")
        state.emit("step.failed", step_id=step.id, error=row.error)
        return
    row.attempts += 1
    finish_row(row, "succeeded", output=value)
    state.emit("step.finished", step_id=step.id, output=value, cost_usd=0)


def finish_row(row: StepRun, status: str, *, output: Any = None, error: str | None = None) -> None:
    row.status, row.error, row.finished_at, row.lease_until = status, error, now(), None
    if output is not None:
        row.output = output


async def settle(state: RunState) -> None:
    """The run's status from its steps'."""
    run, rows = state.run, state.steps.values()
    failed = next((r for r in rows if r.status == "failed"), None)
    if failed is not None:
        await end(state, "failed", error=f"step '{failed.step_id}' failed: {failed.error or 'no reason given'}")
    elif all(r.status in STEP_DONE for r in rows):
        await _succeed(state)
    elif _in_flight(state) == 0 and any(r.status == "waiting" for r in rows):
        if run.status != "waiting":
            run.status = "waiting"
            state.emit("run.waiting", steps=[r.step_id for r in rows if r.status == "waiting"])
    elif run.status == "waiting":
        run.status = "running"


async def _succeed(state: RunState) -> None:
    output: Any = None
    if state.spec.output:
        try:
            output = templates.render(state.spec.output, context(state))
        except templates.TemplateError as exc:
            await end(state, "failed", error=f"output: {exc}")
            return
    else:  # no output template: the output of the last step that ran
        ran = [state.steps[s.id] for s in state.spec.steps if state.steps[s.id].status == "succeeded"]
        output = ran[-1].output if ran else None
    state.run.output = output
    await end(state, "succeeded")


async def end(state: RunState, status: str, *, error: str | None = None) -> None:
    run = state.run
    if run.status not in RUN_ACTIVE:
        return
    run.status, run.error, run.finished_at = status, error, now()
    kind = {"succeeded": "run.finished", "failed": "run.failed", "cancelled": "run.cancelled"}[status]
    state.emit(kind, status=status, output=run.output, error=error, cost_usd=run.cost_micros / 1_000_000)
    await state.session.exec(delete(ActiveRun).where(ActiveRun.run_id == run.id))


# ---------------------------------------------------------------- step leases


@dataclass(frozen=True)
class Later:
    """The step cannot be claimed yet (not due, or leased by a live worker)."""

    delay_s: float


async def claim(tenant_id: uuid.UUID, run_id: uuid.UUID, step_id: str) -> Claim | Later | None:
    """Take a due step, or an interrupted one whose lease ran out. None when
    there is nothing to do (finished, cancelled, or a duplicate delivery)."""
    async with transition(tenant_id, run_id) as state:
        row, step = state.steps.get(step_id), _spec_steps(state.spec).get(step_id)
        if state.run.status not in RUN_ACTIVE or row is None or step is None:
            return None
        moment = now()
        if row.status == "pending" and row.queued_at is not None:
            if row.due_at and row.due_at > moment + timedelta(milliseconds=20):
                return Later((row.due_at - moment).total_seconds())
        elif row.status == "running" and row.lease_until:
            if row.lease_until > moment:
                return Later((row.lease_until - moment).total_seconds() + 0.5)
            state.emit("step.interrupted", step_id=step_id, attempt=row.attempts)
        else:
            return None
        try:
            rendered = render_input(state, step)
        except templates.TemplateError as exc:
            return await _fail_now(state, row, f"input: {exc}")
        row.status, row.attempts, row.input, row.error = "running", row.attempts + 1, rendered, None
        row.started_at, row.lease_until = moment, moment + timedelta(seconds=get_settings().workflow_lease_s)
        if state.run.status != "running":
            state.run.status = "running"
            state.run.started_at = state.run.started_at or moment
        state.emit("step.started", step_id=step_id, attempt=row.attempts)
        return Claim(run=state.run, step=step, attempt=row.attempts, input=rendered, progress=dict(row.progress))


async def _fail_now(state: RunState, row: StepRun, error: str) -> None:
    finish_row(row, "failed", error=error[:2000])
    state.emit("step.failed", step_id=row.step_id, error=row.error)
    await settle(state)


def render_input(state: RunState, step: specs.StepSpec) -> Any:
    """A step's input as it will run: the agent's text, the tool's arguments, or the map's item texts."""
    ctx = context(state)
    if step.type == "tool":
        return _render_args(step.args, ctx)
    if step.type == "map":
        items = templates.evaluate(step.over or "", ctx)
        if not isinstance(items, list | tuple):
            raise templates.TemplateError(f"over must give a list, not {type(items).__name__}")
        if len(items) > MAP_ITEMS_MAX:
            raise templates.TemplateError(f"over gave {len(items)} items; at most {MAP_ITEMS_MAX} are allowed")
        return [templates.render(_input_template(step), {**ctx, "item": x, "index": i}) for i, x in enumerate(items)]
    return templates.render(_input_template(step), ctx)


def _input_template(step: specs.StepSpec) -> str:
    return step.input if step.input is not None else specs.default_input(step)


def _render_args(value: Any, ctx: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return templates.render(value, ctx)
    if isinstance(value, dict):
        return {k: _render_args(v, ctx) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_args(v, ctx) for v in value]
    return value


async def heartbeat(tenant_id: uuid.UUID, run_id: uuid.UUID, step_id: str, attempt: int) -> str:
    """Renew a running step's lease: `ok`, `cancelled` (the run was stopped) or `lost` (another worker owns it)."""
    lease_until = now() + timedelta(seconds=get_settings().workflow_lease_s)
    async with session_scope(system_ctx(tenant_id)) as session:
        renewed = await session.exec(
            update(StepRun)
            .where(
                StepRun.tenant_id == tenant_id,
                StepRun.run_id == run_id,
                StepRun.step_id == step_id,
                StepRun.status == "running",
                StepRun.attempts == attempt,
            )
            .values(lease_until=lease_until)
        )
        status = (
            await session.exec(
                select(WorkflowRun.status).where(WorkflowRun.tenant_id == tenant_id, WorkflowRun.id == run_id)
            )
        ).first()
    if status not in RUN_ACTIVE:
        return "cancelled"
    return "ok" if renewed.rowcount else "lost"


def _owned(state: RunState, step_id: str, attempt: int) -> StepRun | None:
    row = state.steps.get(step_id)
    return row if row is not None and row.status == "running" and row.attempts == attempt else None


async def finish(
    tenant_id: uuid.UUID, run_id: uuid.UUID, step_id: str, attempt: int, output: Any, cost_micros: int
) -> list[Dispatch]:
    """Record a step's success and schedule what it unblocks, in one transaction."""
    async with transition(tenant_id, run_id) as state:
        row = _owned(state, step_id, attempt)
        if row is None:  # lost the lease meanwhile: the new owner's result counts
            return []
        row.cost_micros += cost_micros
        state.run.cost_micros += cost_micros
        finish_row(row, "succeeded", output=output)
        state.emit("step.finished", step_id=step_id, attempt=attempt, output=output, cost_usd=row.cost_micros / 1e6)
        return await advance(state)


async def fail(
    tenant_id: uuid.UUID,
    run_id: uuid.UUID,
    step_id: str,
    attempt: int,
    error: str,
    cost_micros: int = 0,
    *,
    retryable: bool = True,
) -> list[Dispatch]:
    """Record a failed attempt: retry after the step's backoff, or fail the step (and so the run)."""
    async with transition(tenant_id, run_id) as state:
        row = _owned(state, step_id, attempt)
        if row is None:
            return []
        row.cost_micros += cost_micros
        state.run.cost_micros += cost_micros
        policy = _spec_steps(state.spec)[step_id].retry
        if retryable and attempt < policy.max_attempts:
            delay = min(policy.backoff_s * 2 ** (attempt - 1), BACKOFF_MAX_S)
            row.status, row.error, row.lease_until = "pending", error[:2000], None
            row.queued_at, row.due_at = now(), now() + timedelta(seconds=delay)
            state.emit("step.retrying", step_id=step_id, attempt=attempt, error=row.error, delay_s=delay)
            return [Dispatch(tenant_id, run_id, step_id, delay)]
        await _fail_now(state, row, error)
        return []


async def save_progress(
    tenant_id: uuid.UUID, run_id: uuid.UUID, step_id: str, attempt: int, index: int, output: Any, cost_micros: int
) -> bool:
    """Keep one finished map item, so a retried map never runs it again. False if the lease was lost."""
    async with transition(tenant_id, run_id) as state:
        row = _owned(state, step_id, attempt)
        if row is None:
            return False
        row.progress = {**row.progress, str(index): {"output": output, "cost_micros": cost_micros}}
        row.cost_micros += cost_micros
        state.run.cost_micros += cost_micros
        state.emit("step.progress", step_id=step_id, index=index, done=len(row.progress))
        return True


# ------------------------------------------------------------------- recovery


async def active_runs() -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(tenant_id, run_id) of every unfinished run, across tenants (ids only)."""
    async with rls_scope(sweeper=True, readonly=True) as session:
        rows = await session.exec(select(ActiveRun.tenant_id, ActiveRun.run_id).order_by(ActiveRun.since))
        return [(t, r) for t, r in rows.all()]


async def orphans(tenant_id: uuid.UUID, run_id: uuid.UUID, grace_s: float) -> list[Dispatch]:
    """Steps of a run that no executor will deliver: queued and overdue by
    `grace_s` (a hand-off lost in a crash), or running with an expired lease."""
    moment = now()
    overdue = moment - timedelta(seconds=grace_s)
    async with session_scope(system_ctx(tenant_id), readonly=True) as session:
        run = (await session.exec(select(WorkflowRun).where(WorkflowRun.id == run_id))).first()
        if run is None or run.status not in RUN_ACTIVE:
            return []
        rows = (
            await session.exec(select(StepRun).where(StepRun.tenant_id == tenant_id, StepRun.run_id == run_id))
        ).all()
    found = []
    for row in rows:
        lost = row.status == "pending" and row.queued_at is not None and row.due_at is not None and row.due_at < overdue
        dead = row.status == "running" and row.lease_until is not None and row.lease_until < moment
        if lost or dead:
            found.append(Dispatch(tenant_id, run_id, row.step_id))
    return found


def is_final(status: str) -> bool:
    return status in STEP_FINAL
