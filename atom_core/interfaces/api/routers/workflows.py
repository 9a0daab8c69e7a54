"""Workflows (versioned specs) and their runs: start, watch (SSE with
`Last-Event-ID` resume), cancel, resume, approve or reject, rerun."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, StrictBool, WithJsonSchema

from atom_core.context import Ctx
from atom_core.db.pagination import MAX_LIMIT
from atom_core.errors import Invalid
from atom_core.infra import events
from atom_core.interfaces.api import stream_access
from atom_core.interfaces.api.deps import credential, current_ctx
from atom_core.interfaces.api.schemas import Cursor, ListOut, Request
from atom_core.validation import INT32_MAX, JSON_MAX_BYTES, JSON_MAX_DEPTH, TEXT_PATTERN, Int, Matching, Name, Text
from atom_core.workflows import engine
from atom_core.workflows import service as workflows
from atom_core.workflows import spec as specs
from atom_core.workflows.models import StepRun, Workflow, WorkflowRun

router = APIRouter(prefix="/api/v1", tags=["workflows"])
FINAL_EVENTS = frozenset({"run.finished", "run.failed", "run.cancelled"})
POLL_S = 1.0
KEEPALIVE_S = 15.0


# Checked whole by the service (its errors name the path in the spec); the schema states the limits.
SpecSource = Annotated[
    Any,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "object"},
                {"type": "string", "minLength": 1, "maxLength": specs.SPEC_MAX_BYTES, "pattern": TEXT_PATTERN},
            ],
            "description": f"The spec as a JSON object, or YAML/JSON text: at most {specs.SPEC_MAX_BYTES // 1024}"
            f" KB as JSON, nested at most {JSON_MAX_DEPTH} levels",
        }
    ),
]
Version = Int(1, INT32_MAX)
StepId = Matching(re.compile(specs.STEP_ID_PATTERN), 63)


class WorkflowIn(Request):
    name: Name(100, description="Defaults to the spec's name") | None = None
    spec: SpecSource


class SpecIn(Request):
    spec: SpecSource


class RunStartIn(Request):
    input: dict[str, Any] = Field(
        default_factory=dict,
        description=f"At most {JSON_MAX_BYTES // 1024} KB as JSON, nested at most {JSON_MAX_DEPTH} levels; "
        f"integers within ±(2^53-1); text without NUL",
    )
    version: Version | None = None


class DecisionIn(Request):
    approved: StrictBool
    comment: Text(workflows.COMMENT_MAX) | None = None


class RerunIn(Request):
    from_step: StepId


class WorkflowOut(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    latest_version: int
    created_at: datetime
    updated_at: datetime


class WorkflowDetailOut(WorkflowOut):
    version: int
    spec: dict[str, Any]


class StepOut(BaseModel):
    id: str
    status: str
    attempts: int
    input: Any
    output: Any
    error: str | None
    cost_usd: float
    reused: bool
    decision: dict[str, Any] | None
    started_at: datetime | None
    finished_at: datetime | None


class RunOut(BaseModel):
    run_id: uuid.UUID
    workflow_id: uuid.UUID
    version: int
    status: str
    input: dict[str, Any]
    output: Any
    error: str | None
    cost_usd: float
    saved_usd: float = Field(description="What the steps a rerun reused had cost")
    parent_run_id: uuid.UUID | None
    from_step: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class RunDetailOut(RunOut):
    steps: list[StepOut]


def _workflow_out(workflow: Workflow) -> WorkflowOut:
    return WorkflowOut.model_validate(workflow, from_attributes=True)


def _detail(view: workflows.WorkflowView) -> WorkflowDetailOut:
    return WorkflowDetailOut(
        **_workflow_out(view.workflow).model_dump(), version=view.version.version, spec=view.version.spec
    )


def run_out(run: WorkflowRun) -> RunOut:
    return RunOut(
        run_id=run.id,
        workflow_id=run.workflow_id,
        version=run.version,
        status=run.status,
        input=run.input,
        output=run.output,
        error=run.error,
        cost_usd=run.cost_micros / 1_000_000,
        saved_usd=run.saved_micros / 1_000_000,
        parent_run_id=run.parent_run_id,
        from_step=run.from_step,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
    )


def step_out(row: StepRun) -> StepOut:
    return StepOut(
        id=row.step_id,
        status=row.status,
        attempts=row.attempts,
        input=row.input,
        output=row.output,
        error=row.error,
        cost_usd=row.cost_micros / 1_000_000,
        reused=row.reused,
        decision=row.decision,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def run_detail(view: workflows.RunView) -> RunDetailOut:
    return RunDetailOut(**run_out(view.run).model_dump(), steps=[step_out(s) for s in view.steps])


# ------------------------------------------------------------------ workflows


@router.post("/workflows", status_code=201)
async def create_workflow(body: WorkflowIn, ctx: Ctx = Depends(current_ctx)) -> WorkflowDetailOut:
    return _detail(await workflows.create_workflow(ctx, body.spec, body.name))


@router.post("/workflows/validate")
async def validate_workflow(body: SpecIn, ctx: Ctx = Depends(current_ctx)) -> dict[str, Any]:
    """Check a spec without saving it (the editor's live validation)."""
    spec = await workflows.check_spec(ctx, body.spec)
    return {"ok": True, "name": spec.name, "steps": [s.id for s in spec.steps]}


@router.get("/workflows")
async def list_workflows(
    ctx: Ctx = Depends(current_ctx),
    limit: int = Query(50, ge=1, le=MAX_LIMIT),
    cursor: Cursor | None = None,
) -> ListOut[WorkflowOut]:
    page = await workflows.list_workflows(ctx, limit=limit, cursor=cursor)
    return ListOut(items=[_workflow_out(w) for w in page.items], next_cursor=page.next_cursor)


@router.get("/workflows/{workflow_id}")
async def get_workflow(
    workflow_id: uuid.UUID, ctx: Ctx = Depends(current_ctx), version: Version | None = Query(None)
) -> WorkflowDetailOut:
    return _detail(await workflows.get_workflow(ctx, workflow_id, version))


@router.put("/workflows/{workflow_id}")
async def update_workflow(workflow_id: uuid.UUID, body: SpecIn, ctx: Ctx = Depends(current_ctx)) -> WorkflowDetailOut:
    return _detail(await workflows.update_workflow(ctx, workflow_id, body.spec))


@router.post("/workflows/{workflow_id}/runs", status_code=202)
async def start_run(workflow_id: uuid.UUID, body: RunStartIn, ctx: Ctx = Depends(current_ctx)) -> dict[str, Any]:
    run = await workflows.start_run(ctx, workflow_id, body.input, version=body.version)
    return {"run_id": run.id, "status": run.status}


# ------------------------------------------------------------------------ runs


@router.get("/runs")
async def list_runs(
    ctx: Ctx = Depends(current_ctx),
    workflow_id: uuid.UUID | None = None,
    status: Literal[workflows.RUN_STATUSES] | None = None,
    limit: int = Query(50, ge=1, le=MAX_LIMIT),
    cursor: Cursor | None = None,
) -> ListOut[RunOut]:
    page = await workflows.list_runs(ctx, workflow_id=workflow_id, status=status, limit=limit, cursor=cursor)
    return ListOut(items=[run_out(r) for r in page.items], next_cursor=page.next_cursor)


@router.get("/runs/{run_id}")
async def get_run(run_id: uuid.UUID, ctx: Ctx = Depends(current_ctx)) -> RunDetailOut:
    return run_detail(await workflows.get_run(ctx, run_id))


@router.post("/runs/{run_id}/cancel")
async def cancel_run(run_id: uuid.UUID, ctx: Ctx = Depends(current_ctx)) -> RunOut:
    return run_out(await workflows.cancel_run(ctx, run_id))


@router.post("/runs/{run_id}/resume")
async def resume_run(run_id: uuid.UUID, ctx: Ctx = Depends(current_ctx)) -> RunDetailOut:
    return run_detail(await workflows.resume_run(ctx, run_id))


@router.post("/runs/{run_id}/steps/{step_id}/decision")
async def decide(run_id: uuid.UUID, step_id: StepId, body: DecisionIn, ctx: Ctx = Depends(current_ctx)) -> RunDetailOut:
    return run_detail(await workflows.decide(ctx, run_id, step_id, body.approved, body.comment))


@router.post("/runs/{run_id}/rerun", status_code=202)
async def rerun(run_id: uuid.UUID, body: RerunIn, ctx: Ctx = Depends(current_ctx)) -> dict[str, Any]:
    run = await workflows.rerun(ctx, run_id, body.from_step)
    return {"run_id": run.id, "status": run.status, "saved_usd": run.saved_micros / 1_000_000}


@router.get("/runs/{run_id}/events", response_model=None, responses={200: {"content": {"text/event-stream": {}}}})
async def run_events(
    run_id: uuid.UUID,
    ctx: Ctx = Depends(current_ctx),
    last_event_id: str | None = Header(None, description="Resume after this event"),
    after: int | None = Query(
        None, ge=0, le=INT32_MAX, description="Same as Last-Event-ID, for clients that cannot set headers"
    ),
    token: str = Depends(credential),
) -> StreamingResponse:
    """The run's events as server-sent events. The stream ends with the run, or with an
    `access.revoked` event when the requester loses access to the tenant meanwhile."""
    start = _start_after(last_event_id, after)
    await workflows.events_after(ctx, run_id, start, limit=1)  # 404 before the stream opens
    return StreamingResponse(
        _stream(stream_access.Access(token, ctx, "workflows.read"), run_id, start),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _start_after(header: str | None, query: int | None) -> int:
    if header is None:
        return query or 0
    try:
        value = int(header)
    except ValueError:
        raise Invalid("Last-Event-ID must be the id of an event of this run", field="Last-Event-ID") from None
    if not 0 <= value <= INT32_MAX:
        raise Invalid(f"Last-Event-ID must be between 0 and {INT32_MAX}", field="Last-Event-ID")
    return value


async def _stream(access: stream_access.Access, run_id: uuid.UUID, after: int) -> AsyncIterator[str]:
    """Events from the run's log in order. The bus only wakes the stream early;
    the log is read again on every wake-up or poll, so nothing is missed.

    Access is checked again after each read that found events and before they
    are sent, so whatever was written after a member's removal never reaches
    them; `watch` ends an idle stream (interval, membership events)."""
    ctx, wake = access.ctx, asyncio.Event()
    pump = asyncio.create_task(_wake_on_publish(ctx, run_id, wake))
    watcher = stream_access.start_watch(access, on_end=wake.set)
    idle = 0.0
    try:
        while True:
            rows = await workflows.events_after(ctx, run_id, after)
            if watcher.done() or (rows and not await access.check()):
                yield stream_access.ACCESS_REVOKED
                return
            for row in rows:
                after = row.seq
                payload = {"type": row.type, "run_id": str(run_id), "seq": row.seq, **row.data}
                yield f"id: {row.seq}\nevent: {row.type}\ndata: {json.dumps(payload, default=str)}\n\n"
                if row.type in FINAL_EVENTS:
                    return
            if rows:
                idle = 0.0
                continue
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), POLL_S)
            idle += POLL_S
            if idle >= KEEPALIVE_S:
                idle = 0.0
                yield ": keep-alive\n\n"
    finally:
        pump.cancel()
        watcher.cancel()


async def _wake_on_publish(ctx: Ctx, run_id: uuid.UUID, wake: asyncio.Event) -> None:
    topic = events.channel(ctx.tenant_id, engine.run_topic(run_id))
    with contextlib.suppress(Exception):  # without the bus the stream still polls
        async for _ in events.get_bus().subscribe(topic):
            wake.set()
