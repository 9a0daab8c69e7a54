"""Run state transitions: the durable part of the workflow engine.

Every transition is one transaction that first locks the run's row (`FOR
UPDATE` on PostgreSQL; SQLite's `BEGIN IMMEDIATE` serialises writers), so two
steps finishing at once on two workers can never both miss the step that
joins them. A step's output, its status, the scheduling of its successors and
the events that report them are committed together; the executor is handed
the successors only after the commit (a lost hand-off is found by `orphans`).

A claimed step holds a lease its worker renews (`heartbeat`). A step whose
lease ran out was interrupted (its worker died): the next claim runs it again,
while finished steps are never run twice. An executor that runs a step's
successors itself (the embedded one) may have `finish` claim them in the same
transaction (`reserve`): they then start without a claim transaction of their
own, and if they never start their lease runs out like any other.

A transition reads every step's scheduling columns (status, attempts, queued
or not) but the heavier ones (outputs, inputs, progress, times) only of the
steps it needs: the one it acts on and those whose outputs a template to
render reads (`Graph.reads`). It writes back only what changed, with plain
UPDATE statements, and the events in one INSERT: loading and flushing every
step row as an ORM object made a step's cost grow with the run's length.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, insert, null
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
    """A step this worker now owns, with its rendered input. `slot` is what the
    executor reserved for a step `finish` claimed on its behalf (see `reserve`)."""

    run: WorkflowRun
    step: specs.StepSpec
    attempt: int
    input: Any
    progress: dict[str, Any]
    slot: Any = None

    @property
    def ctx(self) -> Ctx:
        """Steps act as the run's starter, with the role they had when starting it."""
        return Ctx(tenant_id=self.run.tenant_id, user_id=self.run.user_id, role=self.run.role, actor=self.run.actor)


# A reservation for one more step to run in this process now, or None if there is no room.
Reserve = Callable[[], Awaitable[Any]]


# ---------------------------------------------------------------- the graph


@dataclass(frozen=True)
class Graph:
    """What transitions ask of a spec, computed once per spec (specs are immutable)."""

    steps: dict[str, specs.StepSpec]
    conditions: frozenset[str]
    reads: dict[str, frozenset[str] | None]  # steps whose outputs a step's templates read; None: any
    output_reads: frozenset[str] | None  # the same for the workflow's output template
    unblocks: dict[str, tuple[str, ...]]  # the steps whose only dependency is this one


def graph(spec: specs.WorkflowSpec) -> Graph:
    cached = _graphs.get(id(spec))
    if cached is not None and cached[0] is spec:
        return cached[1]
    built = Graph(
        steps={s.id: s for s in spec.steps},
        conditions=frozenset(s.id for s in spec.steps if s.type == "condition"),
        reads={s.id: _union(_reads(text, expr) for text, expr in _step_templates(s)) for s in spec.steps},
        output_reads=_reads(spec.output, False) if spec.output else frozenset(),
        unblocks={s.id: tuple(d.id for d in spec.steps if d.depends_on == [s.id]) for s in spec.steps},
    )
    if len(_graphs) > 512:
        _graphs.clear()
    _graphs[id(spec)] = (spec, built)  # holding the spec keeps its id from being reused
    return built


_graphs: dict[int, tuple[specs.WorkflowSpec, Graph]] = {}


def _step_templates(step: specs.StepSpec) -> Iterable[tuple[str, bool]]:
    yield _input_template(step), False
    for text in (step.when, step.over):
        if text is not None:
            yield text, True
    yield from ((text, False) for text in _strings(step.args))


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict | list):
        for item in value.values() if isinstance(value, dict) else value:
            yield from _strings(item)


def _union(parts: Iterable[frozenset[str] | None]) -> frozenset[str] | None:
    found: set[str] = set()
    for part in parts:
        if part is None:
            return None
        found |= part
    return frozenset(found)


def _reads(text: str, expression: bool) -> frozenset[str] | None:
    try:
        return templates.steps_read(text, expression=expression)
    except templates.TemplateError:
        return None


# ---------------------------------------------------------------- run state


class StepRow:
    """One step row as a transition sees it. Always: `id`, `step_id`, `status`,
    `attempts`, `error`, `cost_micros` and `queued` (`queued_at` is set); the
    other columns only once loaded (`RunState.load`). Assignments are kept in
    `changes` and written back when the transition ends."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)
        self.__dict__["changes"] = {}

    def __getattr__(self, name: str) -> Any:  # only called for what was not loaded
        raise AttributeError(f"column {name!r} of step {self.__dict__.get('step_id')!r} was not loaded")

    def __setattr__(self, name: str, value: Any) -> None:
        self.__dict__[name] = value
        self.changes[name] = value
        if name == "queued_at":
            self.__dict__["queued"] = value is not None

    @property
    def loaded(self) -> bool:
        return self.__dict__.get("_full", False)


_T = StepRun.__table__  # type: ignore[attr-defined]
_RUNS = WorkflowRun.__table__  # type: ignore[attr-defined]
_EVENTS = WorkflowEvent.__table__  # type: ignore[attr-defined]
_SLIM = (_T.c.id, _T.c.step_id, _T.c.status, _T.c.attempts, _T.c.error, _T.c.cost_micros)
_DETAIL_NAMES = ("input", "output", "progress", "decision", "reused", "queued_at", "due_at", "lease_until")
_DETAIL = tuple(_T.c[name] for name in (*_DETAIL_NAMES, "started_at", "finished_at"))
_RUN_COLUMNS = tuple(c.name for c in _RUNS.columns)


# Statements built once (building and keying them again on every transition cost
# as much as running them); tenant, run and the steps loaded in full are parameters.
def _of_run(*columns: Any) -> Any:
    return select(*columns).where(_T.c.tenant_id == bindparam("tenant"), _T.c.run_id == bindparam("run"))


_FULL = _T.c.step_id.in_(bindparam("full", expanding=True))
_QUEUED = _T.c.queued_at.is_not(None).label("queued")
_ROWS_SLIM = _of_run(*_SLIM, _QUEUED)
_ROWS_ALL = _of_run(*_SLIM, _QUEUED, *_DETAIL)
_ROWS_SOME = _of_run(*_SLIM, _QUEUED, *(case((_FULL, c), else_=null()).label(c.name) for c in _DETAIL))
_DETAIL_ALL = _of_run(_T.c.step_id, *_DETAIL)
_DETAIL_SOME = _DETAIL_ALL.where(_FULL)
_INSERT_EVENTS = insert(_EVENTS)
_updates: dict[tuple[Any, tuple[str, ...]], Any] = {}


def _update(table: Any, names: tuple[str, ...]) -> Any:
    """UPDATE table SET each of `names` WHERE id = :row_id (parameters `v_<name>`), built once."""
    statement = _updates.get((table, names))
    if statement is None:
        values = {name: bindparam(f"v_{name}", type_=table.c[name].type) for name in names}
        statement = update(table).where(table.c.id == bindparam("row_id", type_=table.c.id.type)).values(values)
        _updates[(table, names)] = statement
    return statement


@dataclass
class RunState:
    """A run, its spec and its step rows, loaded under the run's lock."""

    session: AsyncSession
    run: WorkflowRun
    spec: specs.WorkflowSpec
    steps: dict[str, StepRow]
    graph: Graph
    published: list[dict[str, Any]] = field(default_factory=list)
    new_events: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    loaded_run: dict[str, Any] = field(default_factory=dict)
    moment: datetime = field(default_factory=lambda: now())

    def emit(self, kind: str, **data: Any) -> None:
        self.run.event_seq += 1
        self.new_events.append((self.run.event_seq, kind, data))
        self.published.append({"id": self.run.event_seq, "type": kind, "run_id": str(self.run.id), **data})

    async def load(self, step_ids: Iterable[str] | None) -> None:
        """Load the remaining columns of these steps (None: of every step). Values
        assigned in this transition are kept."""
        wanted = [r for r in self.steps.values() if not r.loaded] if step_ids is None else None
        if wanted is None:
            wanted = [row for sid in set(step_ids or ()) if (row := self.steps.get(sid)) and not row.loaded]
        if not wanted:
            return
        params: dict[str, Any] = {"tenant": self.run.tenant_id, "run": self.run.id}
        if len(wanted) < len(self.steps):
            query, params["full"] = _DETAIL_SOME, [r.step_id for r in wanted]
        else:
            query = _DETAIL_ALL
        for values in (await self.session.exec(query, params=params)).mappings():
            _merge(self.steps[values["step_id"]], values)

    async def write(self) -> None:
        """What this transition changed: step rows grouped by the columns they set, the run, the events."""
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in self.steps.values():
            if row.changes:
                names = tuple(sorted(row.changes))
                groups.setdefault(names, []).append({"row_id": row.id} | {f"v_{k}": row.changes[k] for k in names})
        for names, params in groups.items():
            await self.session.exec(_update(_T, names), params=params if len(params) > 1 else params[0])
        run = self.run
        changed = {}
        for name in _RUN_COLUMNS:
            value, before = getattr(run, name), self.loaded_run[name]
            if value is not before and value != before:
                changed[name] = value
        if changed:
            names = tuple(changed)
            params = {"row_id": run.id} | {f"v_{name}": changed[name] for name in names}
            await self.session.exec(_update(_RUNS, names), params=params)
        if self.new_events:
            rows = [
                {
                    "id": uuid.uuid4(),
                    "tenant_id": run.tenant_id,
                    "run_id": run.id,
                    "seq": seq,
                    "type": kind,
                    "data": data,
                    "created_at": self.moment,
                }
                for seq, kind, data in self.new_events
            ]
            await self.session.exec(_INSERT_EVENTS, params=rows)


def _merge(row: StepRow, values: Any) -> None:
    for name, value in values.items():
        row.__dict__.setdefault(name, value)  # a value set in this transition wins
    row.__dict__["_full"] = True


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

# Which steps to load in full, given the run's graph (None: all of them).
Detail = Callable[[Graph], Collection[str] | None]


@asynccontextmanager
async def transition(tenant_id: uuid.UUID, run_id: uuid.UUID, detail: Detail | None = None) -> AsyncIterator[RunState]:
    """Load and lock a run for one transition; publish its events after commit."""
    async with session_scope(system_ctx(tenant_id)) as session:
        query = select(WorkflowRun).where(WorkflowRun.tenant_id == tenant_id, WorkflowRun.id == run_id)
        run = (await session.exec(query.with_for_update())).first()
        if run is None:
            raise NotFound("run not found", field="run_id")
        session.expunge(run)  # changed by hand, written by `RunState.write` (no ORM flush)
        spec = await load_spec(session, run)
        shape = graph(spec)
        full = detail(shape) if detail is not None else ()
        params: dict[str, Any] = {"tenant": tenant_id, "run": run_id}
        if full is None:
            query = _ROWS_ALL
        elif full:
            query, params["full"] = _ROWS_SOME, list(full)
        else:
            query = _ROWS_SLIM
        rows = {}
        for values in (await session.exec(query, params=params)).mappings():
            if full is None or values["step_id"] in full:
                row = StepRow(dict(values) | {"_full": True})
            else:
                row = StepRow({c.name: values[c.name] for c in _SLIM} | {"queued": values["queued"]})
            row.__dict__["queued"] = bool(row.__dict__["queued"])
            rows[row.step_id] = row
        loaded_run = {name: getattr(run, name) for name in _RUN_COLUMNS}
        state = RunState(session, run, spec, rows, shape, loaded_run=loaded_run)
        yield state
        await state.write()
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


def context(state: RunState, reads: Collection[str] | None = None) -> dict[str, Any]:
    """What templates see: the run's inputs and every step's status and output.
    Only the outputs in `reads` (None: all) are given, and must have been loaded:
    a template reads no others (see `_reads`)."""
    steps = {}
    for sid, row in state.steps.items():
        output = row.output if reads is None or sid in reads else None
        steps[sid] = {"output": output, "status": row.status}
    return {"inputs": state.run.input, "steps": steps}


async def _context_for(state: RunState, reads: frozenset[str] | None) -> dict[str, Any]:
    await state.load(reads)
    return context(state, reads)


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
    """A condition that evaluated false skips its dependents (their outputs are loaded by `advance`)."""
    return step_id in state.graph.conditions and not state.steps[step_id].output


def _spec_steps(spec: specs.WorkflowSpec) -> dict[str, specs.StepSpec]:
    return graph(spec).steps


def _in_flight(state: RunState) -> int:
    return sum(1 for r in state.steps.values() if r.status == "running" or (r.status == "pending" and r.queued))


async def advance(state: RunState) -> list[Dispatch]:
    """Skip, pause, evaluate or queue every step that can move, then settle the run."""
    if state.run.status not in RUN_ACTIVE:
        return []
    if state.graph.conditions:
        await state.load(c for c in state.graph.conditions if state.steps[c].status == "succeeded")
    dispatches: list[Dispatch] = []
    limit, in_flight = state.run.max_parallel, _in_flight(state)
    moved = True
    while moved:  # a condition decided or a step skipped may free its dependents at once
        moved = False
        for step in state.spec.steps:
            row = state.steps[step.id]
            if row.status != "pending" or row.queued:
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
                await _decide_condition(state, step, row)
                moved = True
            elif verdict == "ready" and in_flight < limit:
                row.queued_at = row.due_at = state.moment
                in_flight += 1
                dispatches.append(Dispatch(state.run.tenant_id, state.run.id, step.id))
    await settle(state)
    return dispatches if state.run.status in RUN_ACTIVE else []


async def _decide_condition(state: RunState, step: specs.StepSpec, row: StepRow) -> None:
    try:
        value = bool(templates.evaluate(step.when or "", await _context_for(state, state.graph.reads[step.id])))
    except templates.TemplateError as exc:
        finish_row(row, "failed", error=f"when: {exc}")
        state.emit("step.failed", step_id=step.id, error=row.error)
        return
    row.attempts += 1
    finish_row(row, "succeeded", output=value)
    state.emit("step.finished", step_id=step.id, output=value, cost_usd=0)


def finish_row(row: StepRow, status: str, *, output: Any = None, error: str | None = None) -> None:
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
    elif any(r.status == "waiting" for r in rows) and _in_flight(state) == 0:
        if run.status != "waiting":
            run.status = "waiting"
            state.emit("run.waiting", steps=[r.step_id for r in rows if r.status == "waiting"])
    elif run.status == "waiting":
        run.status = "running"


async def _succeed(state: RunState) -> None:
    output: Any = None
    if state.spec.output:
        try:
            output = templates.render(state.spec.output, await _context_for(state, state.graph.output_reads))
        except templates.TemplateError as exc:
            await end(state, "failed", error=f"output: {exc}")
            return
    else:  # no output template: the output of the last step that ran
        ran = [s.id for s in state.spec.steps if state.steps[s.id].status == "succeeded"]
        if ran:
            await state.load(ran[-1:])
            output = state.steps[ran[-1]].output
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


def _with_reads(step_ids: Iterable[str]) -> Detail:
    """Load these steps in full, and the outputs their templates read."""

    def detail(shape: Graph) -> Collection[str] | None:
        wanted = set(step_ids)
        reads = _union(shape.reads.get(sid, frozenset()) for sid in wanted)
        return None if reads is None else wanted | reads

    return detail


async def claim(tenant_id: uuid.UUID, run_id: uuid.UUID, step_id: str) -> Claim | Later | None:
    """Take a due step, or an interrupted one whose lease ran out. None when
    there is nothing to do (finished, cancelled, or a duplicate delivery)."""
    async with transition(tenant_id, run_id, _with_reads([step_id])) as state:
        row, step = state.steps.get(step_id), state.graph.steps.get(step_id)
        if state.run.status not in RUN_ACTIVE or row is None or step is None:
            return None
        moment = state.moment
        if row.status == "pending" and row.queued:
            if row.due_at and row.due_at > moment + timedelta(milliseconds=20):
                return Later((row.due_at - moment).total_seconds())
        elif row.status == "running" and row.lease_until:
            if row.lease_until > moment:
                return Later((row.lease_until - moment).total_seconds() + 0.5)
            state.emit("step.interrupted", step_id=step_id, attempt=row.attempts)
        else:
            return None
        return await _take(state, row, step)


async def _take(state: RunState, row: StepRow, step: specs.StepSpec, slot: Any = None) -> Claim | None:
    """Claim a loaded step row: render its input, mark it running under a new lease."""
    try:
        rendered = render_input(state, step)
    except templates.TemplateError as exc:
        await _fail_now(state, row, f"input: {exc}")
        return None
    moment = state.moment
    row.status, row.attempts, row.input, row.error = "running", row.attempts + 1, rendered, None
    row.started_at, row.lease_until = moment, moment + timedelta(seconds=get_settings().workflow_lease_s)
    if state.run.status != "running":
        state.run.status = "running"
        state.run.started_at = state.run.started_at or moment
    state.emit("step.started", step_id=step.id, attempt=row.attempts)
    return Claim(run=state.run, step=step, attempt=row.attempts, input=rendered, progress=dict(row.progress), slot=slot)


async def _fail_now(state: RunState, row: StepRow, error: str) -> None:
    finish_row(row, "failed", error=error[:2000])
    state.emit("step.failed", step_id=row.step_id, error=row.error)
    await settle(state)


def render_input(state: RunState, step: specs.StepSpec) -> Any:
    """A step's input as it will run: the agent's text, the tool's arguments, or the map's item texts.
    The outputs the step reads must be loaded."""
    ctx = context(state, state.graph.reads[step.id])
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


def _owned(state: RunState, step_id: str, attempt: int) -> StepRow | None:
    row = state.steps.get(step_id)
    return row if row is not None and row.status == "running" and row.attempts == attempt else None


async def finish(
    tenant_id: uuid.UUID,
    run_id: uuid.UUID,
    step_id: str,
    attempt: int,
    output: Any,
    cost_micros: int,
    *,
    reserve: Reserve | None = None,
) -> list[Dispatch | Claim]:
    """Record a step's success and schedule what it unblocks, in one transaction.

    With `reserve` (an executor that runs what follows itself), each step that
    becomes ready is also claimed in that transaction while `reserve` gives
    room for it: its `Claim` (holding the reservation) is returned instead of a
    `Dispatch`, and it starts without a claim transaction of its own.
    """
    # A step whose only dependency is this one becomes ready now: load it, and what it reads, up front.
    detail = _with_reads_of_unblocked(step_id) if reserve is not None else None
    async with transition(tenant_id, run_id, detail) as state:
        row = _owned(state, step_id, attempt)
        if row is None:  # lost the lease meanwhile: the new owner's result counts
            return []
        row.cost_micros += cost_micros
        state.run.cost_micros += cost_micros
        finish_row(row, "succeeded", output=output)
        state.emit("step.finished", step_id=step_id, attempt=attempt, output=output, cost_usd=row.cost_micros / 1e6)
        dispatches = await advance(state)
        if reserve is None or not dispatches:
            return list(dispatches)
        return await _claim_now(state, dispatches, reserve)


def _with_reads_of_unblocked(step_id: str) -> Detail:
    def detail(shape: Graph) -> Collection[str] | None:
        return _with_reads(shape.unblocks.get(step_id, ()))(shape)

    return detail


async def _claim_now(state: RunState, dispatches: list[Dispatch], reserve: Reserve) -> list[Dispatch | Claim]:
    """Claim the steps `advance` just queued, as far as the executor has room for them."""
    await state.load(_with_reads([d.step_id for d in dispatches])(state.graph))
    following: list[Dispatch | Claim] = []
    for index, dispatch in enumerate(dispatches):
        slot = await reserve()
        if slot is None:  # no room here now: the rest go the usual way
            following += dispatches[index:]
            break
        taken = await _take(state, state.steps[dispatch.step_id], state.graph.steps[dispatch.step_id], slot)
        if taken is not None:
            following.append(taken)
        if state.run.status not in RUN_ACTIVE:  # its input failed to render, and so did the run
            break
    return following


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
        policy = state.graph.steps[step_id].retry
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
    async with transition(tenant_id, run_id, lambda _: (step_id,)) as state:
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
