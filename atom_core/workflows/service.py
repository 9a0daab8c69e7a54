"""Workflows and their runs, as REST, CLI and the dashboard see them.

Every function takes the caller's context first, checks its permission and
touches only that tenant's rows.
"""

from __future__ import annotations

import logging
import sqlite3
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, func, select

from atom_core.agents.models import Agent
from atom_core.agents.tools.builtins import TOOLS
from atom_core.context import Ctx
from atom_core.db import session_scope
from atom_core.db.base import utcnow
from atom_core.db.pagination import Page, paginate
from atom_core.errors import Conflict, Invalid, NotFound, RateLimited
from atom_core.governance import audit
from atom_core.infra.ratelimit import get_rate_limiter
from atom_core.infra.redis import OUTAGE_ERRORS
from atom_core.settings import get_settings
from atom_core.tenancy import permissions
from atom_core.tenancy.validation import check_name
from atom_core.validation import check_text
from atom_core.workflows import engine
from atom_core.workflows import spec as specs
from atom_core.workflows.engine import Dispatch
from atom_core.workflows.executors import get_executor
from atom_core.workflows.models import (
    RUN_ACTIVE,
    ActiveRun,
    StepRun,
    Workflow,
    WorkflowEvent,
    WorkflowRun,
    WorkflowVersion,
)

COMMENT_MAX = 2000
FULL_RETRY_S = 30  # when a tenant has its most unfinished runs: waiting runs may wait for hours
RUN_STATUSES = ("queued", "running", "waiting", "succeeded", "failed", "cancelled")

logger = logging.getLogger(__name__)


@dataclass
class WorkflowView:
    workflow: Workflow
    version: WorkflowVersion


@dataclass
class RunView:
    run: WorkflowRun
    steps: list[StepRun]


# ------------------------------------------------------------------ definitions


async def check_spec(ctx: Ctx, source: Any) -> specs.WorkflowSpec:
    """Parse and validate a spec against this tenant's agents and the tool registry."""
    raw = specs.parse(source)
    async with session_scope(ctx, readonly=True) as session:
        slugs = set((await session.exec(select(Agent.slug).where(Agent.tenant_id == ctx.tenant_id))).all())
    return specs.validate(raw, agents=slugs, tools=TOOLS.names())


async def create_workflow(ctx: Ctx, source: Any, name: str | None = None) -> WorkflowView:
    permissions.require(ctx, "workflows.write")
    spec = await check_spec(ctx, source)
    name = _name(name, spec)
    workflow = Workflow(tenant_id=ctx.tenant_id, name=name, description=spec.description[:2000])
    version = WorkflowVersion(
        tenant_id=ctx.tenant_id, workflow_id=workflow.id, version=1, spec=specs.dump(spec), actor=ctx.actor
    )
    try:
        async with session_scope(ctx) as session:
            session.add(workflow)
            await session.flush()
            session.add(version)
            audit.record(session, ctx, "workflow.create", target=str(workflow.id), details={"name": name})
    except IntegrityError:
        raise Conflict(f"a workflow named '{name}' already exists", field="name") from None
    return WorkflowView(workflow, version)


async def update_workflow(ctx: Ctx, workflow_id: uuid.UUID, source: Any) -> WorkflowView:
    """A new immutable version; runs in flight keep the version they started with."""
    permissions.require(ctx, "workflows.write")
    spec = await check_spec(ctx, source)
    async with session_scope(ctx) as session:
        workflow = await _load(session, ctx, workflow_id, lock=True)
        workflow.latest_version += 1
        workflow.description, workflow.updated_at = spec.description[:2000], utcnow()
        version = WorkflowVersion(
            tenant_id=ctx.tenant_id,
            workflow_id=workflow.id,
            version=workflow.latest_version,
            spec=specs.dump(spec),
            actor=ctx.actor,
        )
        session.add_all([workflow, version])
        audit.record(session, ctx, "workflow.update", target=str(workflow.id), details={"version": version.version})
    return WorkflowView(workflow, version)


async def list_workflows(ctx: Ctx, *, limit: int = 50, cursor: str | None = None) -> Page[Workflow]:
    permissions.require(ctx, "workflows.read")
    query = select(Workflow).where(Workflow.tenant_id == ctx.tenant_id)
    async with session_scope(ctx, readonly=True) as session:
        return await paginate(session, query, Workflow.created_at, Workflow.id, limit=limit, cursor=cursor)


async def get_workflow(ctx: Ctx, workflow_id: uuid.UUID, version: int | None = None) -> WorkflowView:
    permissions.require(ctx, "workflows.read")
    async with session_scope(ctx, readonly=True) as session:
        workflow = await _load(session, ctx, workflow_id)
        number = workflow.latest_version if version is None else version
        row = await _version(session, ctx, workflow.id, number)
    return WorkflowView(workflow, row)


async def find_workflow(ctx: Ctx, name: str) -> Workflow:
    permissions.require(ctx, "workflows.read")
    async with session_scope(ctx, readonly=True) as session:
        query = select(Workflow).where(Workflow.tenant_id == ctx.tenant_id, Workflow.name == name)
        workflow = (await session.exec(query)).first()
    if workflow is None:
        raise NotFound(f"no workflow named '{name}'", field="workflow")
    return workflow


def _name(name: str | None, spec: specs.WorkflowSpec) -> str:
    return check_name(name if name is not None else spec.name, "name", max_length=100)


async def _load(session, ctx: Ctx, workflow_id: uuid.UUID, *, lock: bool = False) -> Workflow:
    query = select(Workflow).where(Workflow.tenant_id == ctx.tenant_id, Workflow.id == workflow_id)
    workflow = (await session.exec(query.with_for_update() if lock else query)).first()
    if workflow is None:
        raise NotFound("workflow not found", field="workflow_id")
    return workflow


async def _version(session, ctx: Ctx, workflow_id: uuid.UUID, number: int) -> WorkflowVersion:
    query = select(WorkflowVersion).where(
        WorkflowVersion.tenant_id == ctx.tenant_id,
        WorkflowVersion.workflow_id == workflow_id,
        WorkflowVersion.version == number,
    )
    row = (await session.exec(query)).first()
    if row is None:
        raise NotFound(f"workflow has no version {number}", field="version")
    return row


# ------------------------------------------------------------------------ runs


async def start_run(ctx: Ctx, workflow_id: uuid.UUID, values: Any = None, *, version: int | None = None) -> WorkflowRun:
    permissions.require(ctx, "workflows.run")
    async with session_scope(ctx, readonly=True) as session:
        workflow = await _load(session, ctx, workflow_id)
        number = workflow.latest_version if version is None else version
        spec = await engine.version_spec(session, ctx.tenant_id, workflow.id, number)
        await _admit_run(session, ctx)
    run = _new_run(ctx, workflow.id, number, specs.check_run_input(spec, values or {}))
    await _begin(run, [engine.new_step(ctx.tenant_id, run.id, s.id) for s in spec.steps])
    return run


async def _admit_run(session, ctx: Ctx) -> None:
    """A tenant may have so many runs unfinished (queued, running or waiting) and
    start so many a minute: past that, 429, so no tenant fills the stores and the
    recovery sweep. Counted on the active-run index (indexed by tenant); runs
    started at the same instant may pass the cap by the few that raced."""
    settings = get_settings()
    count = select(func.count()).select_from(ActiveRun).where(ActiveRun.tenant_id == ctx.tenant_id)
    active = (await session.exec(count)).one()
    if active >= settings.workflow_max_active_runs:
        raise RateLimited(
            f"this tenant has {active} workflow runs queued, running or waiting, its limit "
            f"(ATOM_WORKFLOW_MAX_ACTIVE_RUNS={settings.workflow_max_active_runs}); "
            "let some finish, or cancel them, before starting more",
            retry_after_s=FULL_RETRY_S,
        )
    rule = settings.workflow_run_rate_limit
    if rule:
        verdict = await get_rate_limiter().hit(rule, "workflow_runs", str(ctx.tenant_id), ctx.tenant_id)
        if not verdict.allowed:
            raise RateLimited(
                f"this tenant started workflow runs faster than its limit (ATOM_WORKFLOW_RUN_RATE_LIMIT={rule}); "
                f"retry in {verdict.retry_after_s} s",
                retry_after_s=verdict.retry_after_s,
            )


def _new_run(ctx: Ctx, workflow_id: uuid.UUID, version: int, values: dict[str, Any], **extra: Any) -> WorkflowRun:
    return WorkflowRun(
        tenant_id=ctx.tenant_id,
        workflow_id=workflow_id,
        version=version,
        input=values,
        actor=ctx.actor,
        role=ctx.role,
        user_id=ctx.user_id,
        max_parallel=get_settings().workflow_max_parallel_steps,
        **extra,
    )


async def _begin(run: WorkflowRun, steps: list[dict[str, Any]]) -> None:
    try:
        dispatches = await engine.begin(run, steps)
    except (IntegrityError, sqlite3.IntegrityError):  # its workflow was deleted meanwhile
        raise NotFound("workflow not found", field="workflow_id") from None
    await _hand_off(dispatches)


async def _hand_off(dispatches: list[Dispatch]) -> None:
    """Give committed steps to the executor. The queue being down (Redis) does not undo
    the request: the steps are committed as ready, and the sweep dispatches them later."""
    if not dispatches:
        return
    try:
        await get_executor().submit(dispatches)
    except OUTAGE_ERRORS as exc:
        logger.warning("could not hand %d steps to the queue (%s); the sweep will", len(dispatches), type(exc).__name__)


async def get_run(ctx: Ctx, run_id: uuid.UUID) -> RunView:
    permissions.require(ctx, "workflows.read")
    async with session_scope(ctx, readonly=True) as session:
        run = await _run(session, ctx, run_id)
        steps = await session.exec(select(StepRun).where(StepRun.tenant_id == ctx.tenant_id, StepRun.run_id == run.id))
        spec = await engine.load_spec(session, run)
    order = {s.id: i for i, s in enumerate(spec.steps)}
    return RunView(run, sorted(steps.all(), key=lambda row: order.get(row.step_id, len(order))))


async def list_runs(
    ctx: Ctx,
    *,
    workflow_id: uuid.UUID | None = None,
    status: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[WorkflowRun]:
    permissions.require(ctx, "workflows.read")
    query = select(WorkflowRun).where(WorkflowRun.tenant_id == ctx.tenant_id)
    if workflow_id is not None:
        query = query.where(WorkflowRun.workflow_id == workflow_id)
    if status is not None:
        if status not in RUN_STATUSES:
            raise Invalid(f"status must be one of: {', '.join(RUN_STATUSES)}", field="status")
        query = query.where(WorkflowRun.status == status)
    async with session_scope(ctx, readonly=True) as session:
        return await paginate(session, query, WorkflowRun.created_at, WorkflowRun.id, limit=limit, cursor=cursor)


async def _run(session, ctx: Ctx, run_id: uuid.UUID) -> WorkflowRun:
    query = select(WorkflowRun).where(WorkflowRun.tenant_id == ctx.tenant_id, WorkflowRun.id == run_id)
    run = (await session.exec(query)).first()
    if run is None:
        raise NotFound("run not found", field="run_id")
    return run


async def _visible(ctx: Ctx, run_id: uuid.UUID) -> None:
    async with session_scope(ctx, readonly=True) as session:
        await _run(session, ctx, run_id)


async def cancel_run(ctx: Ctx, run_id: uuid.UUID) -> WorkflowRun:
    """Stop scheduling; steps still running see it at their next heartbeat and stop."""
    permissions.require(ctx, "workflows.run")
    await _visible(ctx, run_id)

    def act(state: engine.RunState) -> WorkflowRun:
        if state.run.status not in RUN_ACTIVE:
            raise Conflict(f"the run already {state.run.status}", field="run_id")
        for row in state.steps.values():
            if not engine.is_final(row.status):
                row.status, row.finished_at, row.lease_until = "cancelled", engine.now(), None
        state.run.error = f"cancelled by {ctx.actor}"
        engine.end(state, "cancelled", error=state.run.error)
        return state.run.model()

    return await engine.transact(ctx.tenant_id, run_id, act)


async def decide(ctx: Ctx, run_id: uuid.UUID, step_id: str, approved: Any, comment: Any = None) -> RunView:
    """A human decision on a waiting approval step: approved lets the run go on, rejected fails it."""
    permissions.require(ctx, "workflows.approve")
    if not isinstance(approved, bool):
        raise Invalid("approved must be true or false", field="approved")
    if comment is not None:
        check_text(comment, "comment", max_length=COMMENT_MAX)
    await _visible(ctx, run_id)

    def act(state: engine.RunState) -> list[Dispatch]:
        row = state.steps.get(step_id)
        if row is None:
            raise NotFound(f"the run has no step '{step_id}'", field="step_id")
        if row.status != "waiting":
            raise Conflict(f"step '{step_id}' is not waiting for a decision (it is {row.status})", field="step_id")
        row.decision = {"approved": approved, "comment": comment or "", "by": ctx.actor, "at": engine.now().isoformat()}
        if approved:
            engine.finish_row(row, "succeeded", output=row.decision)
            state.emit("step.finished", step_id=step_id, output=row.decision, cost_usd=0)
        else:
            engine.finish_row(row, "failed", error=f"rejected by {ctx.actor}" + (f": {comment}" if comment else ""))
            state.emit("step.failed", step_id=step_id, error=row.error)
        audit.record(
            state.session, ctx, "workflow.decision", target=str(run_id), details={"step": step_id, "approved": approved}
        )
        return engine.advance(state)

    await _hand_off(await engine.transact(ctx.tenant_id, run_id, act, session=True))
    return await get_run(ctx, run_id)


async def resume_run(ctx: Ctx, run_id: uuid.UUID) -> RunView:
    """Go on from the last completed steps: a failed or cancelled run's
    unfinished steps run again (finished ones are kept); an active run's lost
    steps are dispatched again."""
    permissions.require(ctx, "workflows.run")
    await _visible(ctx, run_id)

    def act(state: engine.RunState) -> list[Dispatch]:
        if state.run.status == "succeeded":
            raise Conflict("the run already succeeded; use rerun to run it again", field="run_id")
        if state.run.status in RUN_ACTIVE:
            return []
        for row in state.steps.values():
            if row.status in ("failed", "cancelled", "running"):
                row.status, row.error, row.queued_at, row.due_at, row.lease_until = "pending", None, None, None, None
        state.run.status, state.run.error, state.run.finished_at = "running", None, None
        state.store.add_active(ctx.tenant_id, state.run.id, state.moment)
        state.emit("run.resumed", by=ctx.actor)
        return engine.advance(state)

    dispatches = await engine.transact(ctx.tenant_id, run_id, act)
    dispatches += await engine.orphans(ctx.tenant_id, run_id, grace_s=0)
    await _hand_off(dispatches)
    return await get_run(ctx, run_id)


async def rerun(ctx: Ctx, run_id: uuid.UUID, from_step: Any) -> WorkflowRun:
    """A new run of the same version that reuses every finished step that is not
    `from_step` or downstream of it, and reports what that saved."""
    permissions.require(ctx, "workflows.run")
    parent = (await get_run(ctx, run_id)).run
    async with session_scope(ctx, readonly=True) as session:
        spec = await engine.load_spec(session, parent)
        if not isinstance(from_step, str) or from_step not in {s.id for s in spec.steps}:
            raise Invalid("from_step must name a step of the run's workflow", field="from_step")
        redo = _downstream(spec, from_step)
        await _admit_run(session, ctx)
        old = {r.step_id: r for r in (await session.exec(select(StepRun).where(StepRun.run_id == parent.id))).all()}
    run = _new_run(ctx, parent.workflow_id, parent.version, parent.input, parent_run_id=parent.id, from_step=from_step)
    rows = [_reused_or_new(ctx, run, old.get(s.id), s.id, s.id in redo) for s in spec.steps]
    run.saved_micros = sum(r["cost_micros"] for r in rows if r["reused"])
    await _begin(run, rows)
    return run


def _downstream(spec: specs.WorkflowSpec, step_id: str) -> set[str]:
    """The step and every step that depends on it, directly or not."""
    following, found, todo = specs.dependents(spec), {step_id}, [step_id]
    while todo:
        for nxt in following.get(todo.pop(), []):
            if nxt not in found:
                found.add(nxt)
                todo.append(nxt)
    return found


def _reused_or_new(ctx: Ctx, run: WorkflowRun, old: StepRun | None, step_id: str, redo: bool) -> dict[str, Any]:
    if redo or old is None or old.status not in ("succeeded", "skipped"):
        return engine.new_step(ctx.tenant_id, run.id, step_id)
    return engine.new_step(
        ctx.tenant_id,
        run.id,
        step_id,
        status=old.status,
        input=old.input,
        output=old.output,
        cost_micros=old.cost_micros,
        decision=old.decision,
        reused=True,
        finished_at=utcnow(),
    )


# ---------------------------------------------------------------------- events


async def events_after(ctx: Ctx, run_id: uuid.UUID, after: int = 0, limit: int = 500) -> list[WorkflowEvent]:
    """The run's events with a sequence number above `after`, oldest first."""
    permissions.require(ctx, "workflows.read")
    async with session_scope(ctx, readonly=True) as session:
        await _run(session, ctx, run_id)
        query = (
            select(WorkflowEvent)
            .where(WorkflowEvent.tenant_id == ctx.tenant_id, WorkflowEvent.run_id == run_id, WorkflowEvent.seq > after)
            .order_by(col(WorkflowEvent.seq))
            .limit(limit)
        )
        return list((await session.exec(query)).all())
