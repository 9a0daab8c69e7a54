"""Agent runs: start one (JSON or a server-sent event stream), read it back
with its span tree, cancel it."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

from atom_core.agents import runtime
from atom_core.analytics.models import SpanRecord
from atom_core.context import Ctx
from atom_core.errors import AtomError, Conflict
from atom_core.infra.redis import get_redis, unavailable_as
from atom_core.interfaces.api import stream_access
from atom_core.interfaces.api.deps import credential, current_ctx
from atom_core.interfaces.api.schemas import Request
from atom_core.validation import Matching, Text

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["runs"])


class RunIn(Request):
    input: Text(runtime.INPUT_MAX, required=True)
    session_id: Matching(runtime.SESSION_RE, 64, description="Continue this session") | None = None
    stream: bool = False


@router.post("/agents/{agent_id}/runs", response_model=None, responses={200: {"content": {"text/event-stream": {}}}})
async def start_run(
    agent_id: uuid.UUID, body: RunIn, ctx: Ctx = Depends(current_ctx), token: str = Depends(credential)
) -> Any:
    """Run the agent. With `stream: true`, a `text/event-stream` of run events, which ends
    with an `access.revoked` event (and the run is cancelled) if the requester loses access."""
    if not body.stream:
        outcome = await runtime.run_agent(ctx, agent_id, body.input, session_id=body.session_id)
        return runtime.run_summary(outcome.run)
    await _require_redis()
    return StreamingResponse(
        _event_stream(stream_access.Access(token, ctx, "agents.run"), agent_id, body),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _require_redis() -> None:
    """A run needs Redis in server mode (its slot, its events): say so with a 503 before the
    stream's 200 is sent. An outage after this still ends the stream with `run.failed`."""
    client = get_redis()
    if client is not None:
        async with unavailable_as("concurrency limit"):
            await client.ping()


async def _event_stream(access: stream_access.Access, agent_id: uuid.UUID, body: RunIn) -> AsyncIterator[str]:
    ctx, queue = access.ctx, asyncio.Queue[dict[str, Any] | None]()

    async def work() -> None:
        try:
            await runtime.run_agent(ctx, agent_id, body.input, session_id=body.session_id, on_event=queue.put)
        except AtomError as exc:  # refused before the run started: still a well-formed stream
            await queue.put({"type": "run.failed", "error": exc.message, "code": exc.code, "field": exc.field})
        except Exception:  # failed before the run existed (a started run ends itself with `run.failed`)
            log.exception("agent run of %s could not start (request %s)", agent_id, ctx.request_id)
            await queue.put({"type": "run.failed", "error": runtime.internal_error(ctx), "code": "internal_error"})
        finally:
            await queue.put(None)

    task = asyncio.create_task(work())
    watcher = stream_access.start_watch(access, on_end=lambda: queue.put_nowait(None))
    try:
        while (event := await queue.get()) is not None and not watcher.done():
            yield f"event: {event['type']}\ndata: {json.dumps(event, default=str)}\n\n"
        if watcher.done():
            yield stream_access.ACCESS_REVOKED
    finally:
        watcher.cancel()
        if not task.done():  # the client went away or lost access: stop paying for tokens nobody reads
            task.cancel()


@router.get("/agent-runs/{run_id}")
async def get_run(run_id: uuid.UUID, ctx: Ctx = Depends(current_ctx)) -> dict[str, Any]:
    run = await runtime.get_run(ctx, run_id)
    spans = await runtime.get_spans(ctx, run)
    summary = runtime.run_summary(run)
    return summary | {
        "agent_id": str(run.agent_id) if run.agent_id else None,
        "agent_slug": run.agent_slug,
        "input": run.input,
        "created_at": run.created_at,
        "finished_at": run.finished_at,
        "spans": span_tree(spans),
    }


@router.post("/agent-runs/{run_id}/cancel", status_code=202)
async def cancel_run(run_id: uuid.UUID, ctx: Ctx = Depends(current_ctx)) -> dict[str, str]:
    """Ask the node executing the run to cancel it; the run then ends as `cancelled`."""
    if not await runtime.cancel_run(ctx, run_id):
        raise Conflict("the run is not running (it has finished)", field="run_id")
    return {"run_id": str(run_id), "status": "cancelling"}


def span_tree(spans: list[SpanRecord]) -> list[dict[str, Any]]:
    """Spans nested under their parents, in start order."""
    nodes = {s.id: _span_out(s) for s in spans}
    roots: list[dict[str, Any]] = []
    for span in spans:
        parent = nodes.get(span.parent_id) if span.parent_id else None
        (parent["children"] if parent else roots).append(nodes[span.id])
    return roots


def _span_out(span: SpanRecord) -> dict[str, Any]:
    duration = int((span.ended_at - span.started_at).total_seconds() * 1000) if span.ended_at else None
    return {
        "id": str(span.id),
        "kind": span.kind,
        "name": span.name,
        "status": span.status,
        "error": span.error,
        "started_at": span.started_at,
        "ended_at": span.ended_at,
        "duration_ms": duration,
        "prompt_tokens": span.prompt_tokens,
        "completion_tokens": span.completion_tokens,
        "cost_usd": span.cost_micros / 1_000_000,
        "attributes": span.attributes,
        "children": [],
    }
