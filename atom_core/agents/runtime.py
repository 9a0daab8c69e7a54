"""The agent loop, in seven stages:

1. validate the request;            2. governance check (policy interface);
3. resolve context (agent, session history);
4. recall memories (memory interface);
5. reason: model calls with tool calls until an answer or the iteration cap;
6. record: run, messages and spans in one transaction (which concurrent
   runs of the tenant share: see `run_writes`);
7. respond with metadata (tokens, cost, latency, trace id).

Events (`run.started`, `token`, `tool.started`, `tool.finished`,
`run.finished` | `run.failed`) go to the caller's sink (SSE) and the event bus
(see `run_events`); a run can be cancelled from any node (see `cancellation`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlmodel import select, update

from atom_core.agents import cancellation, run_writes, tool_settings
from atom_core.agents import service as agents
from atom_core.agents.models import Agent
from atom_core.agents.run_events import EventSink, RunEvents
from atom_core.agents.runs import AgentMessage, AgentRun
from atom_core.agents.tools.builtins import TOOLS
from atom_core.agents.tools.env import ToolEnv
from atom_core.agents.tools.executor import ToolCallRequest, execute
from atom_core.analytics.models import SpanRecord, TraceRecord
from atom_core.analytics.spans import Span, TraceRecorder
from atom_core.context import Ctx
from atom_core.db import session_scope
from atom_core.errors import AtomError, Invalid, NotFound
from atom_core.governance.policy import get_policy
from atom_core.infra import concurrency
from atom_core.llm import gateway
from atom_core.memory import recall
from atom_core.settings import get_settings
from atom_core.tenancy import permissions
from atom_core.validation import check_text

logger = logging.getLogger(__name__)

INPUT_MAX = 32_000
HISTORY_MAX = 50
SESSION_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass
class RunOutcome:
    run: AgentRun  # status: running | succeeded | failed | cancelled


@dataclass
class _Loop:
    """What the reasoning loop accumulates."""

    messages: list[dict[str, Any]]
    output: str = ""
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_micros: int = 0
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    new_messages: list[dict[str, Any]] = field(default_factory=list)


async def run_agent(
    ctx: Ctx, agent_id: uuid.UUID, text: str, *, session_id: str | None = None, on_event: EventSink | None = None
) -> RunOutcome:
    """Run the agent once. Once the run exists, whatever happens it ends in a
    final state: recorded, its spans closed, its slot given back and its final
    event sent. A cancel request ends it as `cancelled` and it returns; any
    other cancellation of the calling task is re-raised after the recording."""
    # 1. validate
    text = _check_input(text)
    continued = _check_session(session_id)  # None: a new session, with no history to read
    session_id = continued or uuid.uuid4().hex
    agent = await agents.get_agent(ctx, agent_id)
    # 2. governance
    await get_policy().check_run(ctx, agent)
    settings = get_settings()
    async with concurrency.slot(ctx.tenant_id, "agent runs", settings.max_concurrent_runs):
        await cancellation.ensure_listening()  # before the run exists, so no cancel request is missed
        run = await _start(ctx, agent, session_id, text)
        emit = RunEvents(ctx, run.id, on_event)
        trace = TraceRecorder(run.trace_id)
        trace.start("run", agent.slug, agent_id=str(agent.id), session_id=session_id)  # the root span
        loop = _Loop(messages=[])
        started = time.perf_counter()
        status, error, interrupted = await _reason_to_the_end(ctx, run, agent, continued, text, trace, emit, loop)
        latency_ms = int((time.perf_counter() - started) * 1000)
        finished = _finish(run, loop, status, error, latency_ms)
        # 6. record and 7. respond, in a task of its own: a second cancellation of the caller
        # must not stop the run from ending (the task then finishes in the background).
        conclusion = asyncio.create_task(_conclude(ctx, run, finished, agent, loop, trace, emit))
        _concluding.add(conclusion)
        conclusion.add_done_callback(_concluding.discard)
        await asyncio.shield(conclusion)
        if interrupted is not None:
            raise interrupted
        return RunOutcome(run=run)


_concluding: set[asyncio.Task] = set()  # strong references until they finish
CANCELLED = "the run was cancelled"


def internal_error(ctx: Ctx) -> str:
    """What a user reads about a failure inside ATOM: its details are in the server log only."""
    return f"internal error: the run failed (details are in the server log, request {ctx.request_id})"


async def _reason_to_the_end(
    ctx: Ctx,
    run: AgentRun,
    agent: Agent,
    continued: str | None,
    text: str,
    trace: TraceRecorder,
    emit: RunEvents,
    loop: _Loop,
) -> tuple[str, str | None, asyncio.CancelledError | None]:
    """Stages 3-5 under the run's timeout and cancellation. Every way they can
    end, as (status, error, the caller's cancellation to re-raise after recording)."""
    timeout_s = get_settings().run_timeout_s
    deadline = asyncio.timeout(timeout_s)
    try:
        with cancellation.running(ctx, run.id):
            await emit("run.started", agent=agent.slug, session_id=run.session_id, model=agent.model)
            async with deadline:
                await _reason(ctx, agent, continued, text, trace, trace.spans[0], emit, loop)
        return "succeeded", None, None
    except cancellation.RunCancelled:
        return "cancelled", CANCELLED, None
    except asyncio.CancelledError as exc:  # the caller went away or the process stops
        return "cancelled", CANCELLED, exc
    except (AtomError, MaxIterations) as exc:
        return "failed", exc.message, None
    except Exception as exc:
        if isinstance(exc, TimeoutError) and deadline.expired():
            return "failed", f"the run took longer than {timeout_s:g} s", None
        # Its text may hold secrets or tenant content: the log gets it, the run a generic line.
        logger.exception("agent run %s failed (request %s)", run.id, ctx.request_id)
        return "failed", internal_error(ctx), None


async def _conclude(
    ctx: Ctx, run: AgentRun, finished: dict[str, Any], agent: Agent, loop: _Loop, trace: TraceRecorder, emit: RunEvents
) -> None:
    _close_spans(trace, run)
    try:
        await _record(ctx, run, finished, agent, loop, trace)
    except Exception:
        logger.exception("recording agent run %s failed; recording its final status alone", run.id)
        await _record_status_only(ctx, run)
    try:
        await emit("run.finished" if run.status == "succeeded" else "run.failed", **run_summary(run))
    except Exception:  # the requester's sink failed (the bus never raises): nothing is left to tell
        logger.exception("could not send the final event of agent run %s", run.id)


def _close_spans(trace: TraceRecorder, run: AgentRun) -> None:
    """End the root span with the run's totals, and any span a failure left open."""
    root, *inner = trace.spans
    for span in inner:
        if span.ended_at is None:
            trace.end(span, error=run.error or "interrupted")
    trace.end(
        root,
        error=run.error,
        prompt_tokens=run.prompt_tokens,
        completion_tokens=run.completion_tokens,
        cost_micros=run.cost_micros,
    )


async def _record_status_only(ctx: Ctx, run: AgentRun) -> None:
    """The run's final status without its messages, spans or output (whatever
    broke the full record may be among them); a lost output makes it `failed`."""
    if run.status != "cancelled":
        run.status, run.error, run.output = "failed", internal_error(ctx), ""
    values = {
        "status": run.status,
        "error": run.error,
        "finished_at": run.finished_at,
        "latency_ms": run.latency_ms,
        "prompt_tokens": run.prompt_tokens,
        "completion_tokens": run.completion_tokens,
        "cost_micros": run.cost_micros,
    }
    try:
        await _end_if_running(ctx, run.id, values)
    except Exception:
        logger.exception("recording the final status of agent run %s failed", run.id)


async def _end_if_running(ctx: Ctx, run_id: uuid.UUID, values: dict[str, Any]) -> bool:
    """Write a run's final columns alone, if it is still `running`; False if it was not."""
    async with session_scope(ctx) as session:
        result = await session.exec(
            update(AgentRun)
            .where(AgentRun.tenant_id == ctx.tenant_id, AgentRun.id == run_id, AgentRun.status == "running")
            .values(**values)
        )
    return bool(result.rowcount)


class MaxIterations(Exception):
    def __init__(self, limit: int):
        super().__init__(f"stopped after {limit} model calls without a final answer")
        self.message = str(self)


def _check_input(text: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise Invalid("input is required", field="input")
    return check_text(text, "input", max_length=INPUT_MAX)


def _check_session(session_id: str | None) -> str | None:
    if session_id is None:
        return None
    if not SESSION_RE.match(session_id):
        raise Invalid("session_id must be 1-64 letters, digits, '.', '_', ':' or '-'", field="session_id")
    return session_id


async def _start(ctx: Ctx, agent: Agent, session_id: str, text: str) -> AgentRun:
    run = AgentRun(
        tenant_id=ctx.tenant_id,
        agent_id=agent.id,
        agent_slug=agent.slug,
        session_id=session_id,
        input=text,
        model=agent.model,
        actor=ctx.actor,
    )
    await run_writes.commit(ctx, run_writes.Write(add=[run]))
    return run


async def _reason(
    ctx: Ctx,
    agent: Agent,
    continued: str | None,
    text: str,
    trace: TraceRecorder,
    root: Span,
    emit: RunEvents,
    loop: _Loop,
) -> None:
    """Fills `loop` as it goes: a failure keeps the usage and tool calls so far."""
    # 3. resolve context
    history = await _history(ctx, agent.id, continued) if continued else []
    # 4. recall
    memories: list[str] = []
    if agent.memory_enabled:
        span = trace.start("memory.recall", "recall", root)
        memories = await recall.recall(ctx, agent, text)
        trace.end(span, results=len(memories))
    system = agent.system_prompt + ("\n\nRelevant memories:\n- " + "\n- ".join(memories) if memories else "")
    user = {"role": "user", "content": text}
    loop.messages = [*([{"role": "system", "content": system}] if system else []), *history, user]
    loop.new_messages.append(user)
    # 5. reason
    tools = TOOLS.schemas(agent.tools) or None
    env = await tool_settings.tool_env(ctx) if tools else ToolEnv()
    settings = get_settings()
    for _ in range(settings.agent_max_iterations):
        request = gateway.ChatRequest(
            model=agent.model,
            fallbacks=agent.fallbacks,
            messages=loop.messages,
            tools=tools,
            temperature=agent.temperature,
            max_tokens=agent.max_tokens,
        )
        # Streaming costs litellm about twice the CPU: only when the requester reads tokens.
        on_token = emit.token if emit.wants_tokens else None
        result = await gateway.complete(ctx, request, trace=trace, parent=root, on_token=on_token)
        if on_token is None and result.content:
            await emit.token(result.content)  # bus subscribers still get the text, in one piece
        _add_usage(loop, result)
        assistant = result.assistant_message()
        loop.messages.append(assistant)
        loop.new_messages.append(assistant)
        if not result.tool_calls:
            loop.output = result.content
            return
        for call in result.tool_calls:
            await _run_tool(ctx, agent, call, env, loop, trace, root, emit)
    raise MaxIterations(settings.agent_max_iterations)


def _add_usage(loop: _Loop, result: gateway.ChatResult) -> None:
    loop.model = result.model
    loop.prompt_tokens += result.prompt_tokens
    loop.completion_tokens += result.completion_tokens
    loop.cost_micros += result.cost_micros


async def _run_tool(
    ctx: Ctx,
    agent: Agent,
    call: gateway.ToolCall,
    env: ToolEnv,
    loop: _Loop,
    trace: TraceRecorder,
    root: Span,
    emit: RunEvents,
) -> None:
    await emit("tool.started", id=call.id, name=call.name, arguments=call.arguments)
    span = trace.start("tool.call", call.name, root, arguments=call.arguments[:2000])
    request = ToolCallRequest(id=call.id, name=call.name, arguments=call.arguments)
    result = await execute(ctx, request, allowed=agent.tools, env=env, timeout_s=get_settings().tool_timeout_s)
    trace.end(span, error=result.error, refused=result.refused, output=result.output[:2000])
    summary = {
        "id": call.id,
        "name": call.name,
        "arguments": call.arguments,
        "ok": result.ok,
        "output": result.output,
        "error": result.error,
        "refused": result.refused,
    }
    loop.tool_calls.append(summary)
    message = result.to_message()
    loop.messages.append(message)
    loop.new_messages.append(message)
    await emit("tool.finished", **summary)


async def _history(ctx: Ctx, agent_id: uuid.UUID, session_id: str) -> list[dict[str, Any]]:
    query = (
        select(AgentMessage)
        .where(
            AgentMessage.tenant_id == ctx.tenant_id,
            AgentMessage.agent_id == agent_id,
            AgentMessage.session_id == session_id,
        )
        .order_by(AgentMessage.created_at.desc(), AgentMessage.seq.desc())
        .limit(HISTORY_MAX)
    )
    async with session_scope(ctx, readonly=True) as session:
        rows = list(reversed((await session.exec(query)).all()))
    while rows and rows[0].role == "tool":  # never start mid tool exchange
        rows.pop(0)
    return [_as_message(row) for row in rows]


def _as_message(row: AgentMessage) -> dict[str, Any]:
    message: dict[str, Any] = {"role": row.role, "content": row.content or None}
    if row.tool_calls:
        message["tool_calls"] = row.tool_calls
    if row.tool_call_id:
        message["tool_call_id"] = row.tool_call_id
    if row.name:
        message["name"] = row.name
    return message


def _finish(run: AgentRun, loop: _Loop, status: str, error: str | None, latency_ms: int) -> dict[str, Any]:
    """Set the run's final fields; returns them, with its id, to update the row `_start` inserted."""
    finished = {
        "status": status,
        "error": error,
        "output": loop.output,
        "model": loop.model or run.model,
        "prompt_tokens": loop.prompt_tokens,
        "completion_tokens": loop.completion_tokens,
        "cost_micros": loop.cost_micros,
        "tool_calls": loop.tool_calls,
        "latency_ms": latency_ms,
        "finished_at": datetime.now(UTC),
    }
    for name, value in finished.items():
        setattr(run, name, value)
    return {"id": run.id, **finished}


async def _record(
    ctx: Ctx, run: AgentRun, finished: dict[str, Any], agent: Agent, loop: _Loop, trace: TraceRecorder
) -> None:
    """Everything the run produced, committed together (even if the run is
    cancelled meanwhile: `run_writes.commit` finishes what it started)."""
    # Failed exchanges are not kept as messages: they would poison the next turn's history.
    messages = _messages(ctx, run, agent, loop) if run.status == "succeeded" else []
    write = run_writes.Write(
        add=[*messages, _trace_record(ctx, run, trace), *_span_records(ctx, run, trace)],
        update=(AgentRun, finished),
    )
    await run_writes.commit(ctx, write)


def _messages(ctx: Ctx, run: AgentRun, agent: Agent, loop: _Loop) -> list[AgentMessage]:
    """The run's new messages. A session reads in (created_at, seq) order, so
    recording needs no read of the session's last position."""
    now = datetime.now(UTC)
    return [
        AgentMessage(
            tenant_id=ctx.tenant_id,
            agent_id=agent.id,
            session_id=run.session_id,
            run_id=run.id,
            seq=seq,
            role=message["role"],
            content=message.get("content") or "",
            tool_calls=message.get("tool_calls"),
            tool_call_id=message.get("tool_call_id"),
            name=message.get("name"),
            created_at=now,
        )
        for seq, message in enumerate(loop.new_messages, start=1)
    ]


def _trace_record(ctx: Ctx, run: AgentRun, trace: TraceRecorder) -> TraceRecord:
    root = trace.spans[0]
    return TraceRecord(
        id=trace.trace_id,
        tenant_id=ctx.tenant_id,
        run_id=run.id,
        name=root.name,
        status=root.status,
        started_at=root.started_at,
        ended_at=root.ended_at,
        prompt_tokens=run.prompt_tokens,
        completion_tokens=run.completion_tokens,
        cost_micros=run.cost_micros,
    )


def _span_records(ctx: Ctx, run: AgentRun, trace: TraceRecorder) -> list[SpanRecord]:
    return [
        SpanRecord(
            id=s.id,
            tenant_id=ctx.tenant_id,
            trace_id=trace.trace_id,
            run_id=run.id,
            parent_id=s.parent_id,
            kind=s.kind,
            name=s.name[:200],
            status=s.status,
            error=(s.error or None) and s.error[:1000],
            started_at=s.started_at,
            ended_at=s.ended_at,
            prompt_tokens=s.prompt_tokens,
            completion_tokens=s.completion_tokens,
            cost_micros=s.cost_micros,
            attributes=_jsonable(s.attributes),
        )
        for s in trace.spans
    ]


def _jsonable(attributes: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v if isinstance(v, str | int | float | bool | list | dict | type(None)) else str(v)
        for k, v in attributes.items()
    }


def run_summary(run: AgentRun) -> dict[str, Any]:
    return {
        "run_id": str(run.id),
        "status": run.status,
        "output": run.output,
        "error": run.error,
        "tool_calls": run.tool_calls,
        "model": run.model,
        "usage": {"prompt_tokens": run.prompt_tokens, "completion_tokens": run.completion_tokens},
        "cost_usd": run.cost_micros / 1_000_000,
        "latency_ms": run.latency_ms,
        "trace_id": str(run.trace_id),
        "session_id": run.session_id,
    }


async def cancel_run(ctx: Ctx, run_id: uuid.UUID) -> bool:
    """Cancel a run wherever it executes: here at once, elsewhere through the bus
    (in the background: the caller is not kept waiting for the answer).
    False if the run is not running (it finished, failed or was cancelled)."""
    permissions.require(ctx, "agents.run")
    run = await get_run(ctx, run_id)
    if run.status != "running":
        return False
    if not cancellation.cancel_here(ctx.tenant_id, run.id):
        task = asyncio.create_task(_cancel_elsewhere(ctx, run))
        _cancelling.add(task)
        task.add_done_callback(_cancelling.discard)
    return True


_cancelling: set[asyncio.Task] = set()  # strong references until they finish


async def _cancel_elsewhere(ctx: Ctx, run: AgentRun) -> None:
    """Ask the process running it; if none answers, that process died with the run
    "running": record it as cancelled here, and tell whoever follows its events."""
    try:
        if await cancellation.request(ctx, run.id):
            return
        abandoned = {"status": "cancelled", "error": ABANDONED, "finished_at": datetime.now(UTC)}
        if await _end_if_running(ctx, run.id, abandoned):
            for name, value in abandoned.items():
                setattr(run, name, value)
            await RunEvents(ctx, run.id, None)("run.failed", **run_summary(run))
    except Exception:
        logger.exception("cancelling run %s elsewhere failed", run.id)


ABANDONED = "cancelled; the process that was running it had stopped"


async def get_run(ctx: Ctx, run_id: uuid.UUID) -> AgentRun:
    permissions.require(ctx, "agents.read")
    async with session_scope(ctx, readonly=True) as session:
        run = (
            await session.exec(select(AgentRun).where(AgentRun.tenant_id == ctx.tenant_id, AgentRun.id == run_id))
        ).first()
    if run is None:
        raise NotFound("run not found")
    return run


async def get_spans(ctx: Ctx, run: AgentRun) -> list[SpanRecord]:
    async with session_scope(ctx, readonly=True) as session:
        query = select(SpanRecord).where(SpanRecord.tenant_id == ctx.tenant_id, SpanRecord.trace_id == run.trace_id)
        return list((await session.exec(query.order_by(SpanRecord.started_at))).all())
