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
transaction (`room`): they then start without a claim transaction of their
own; one it then finds no room for is given back (`release`).

A transition is plain synchronous code (`transact`) run inside one
transaction on a `stores` connection: a plain sqlite3 connection on its own
thread for the embedded SQLite database (one thread round trip per
transition), or a SQLAlchemy session otherwise. It reads every step's
scheduling columns (status, attempts, queued or not) but the heavier ones
(outputs, inputs, progress, times) only of the steps it needs: the one it acts
on and those whose outputs a template to render reads (`Graph.reads`). It
writes back only what changed, and the events in one INSERT.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from atom_core.context import Ctx
from atom_core.db import session_scope
from atom_core.db.direct import get_direct
from atom_core.db.session import rls_scope
from atom_core.errors import NotFound
from atom_core.infra import events
from atom_core.settings import get_settings
from atom_core.workflows import rendering, templates
from atom_core.workflows import spec as specs
from atom_core.workflows.models import (
    RUN_ACTIVE,
    RUN_IN_FLIGHT,
    STEP_DONE,
    STEP_FINAL,
    ActiveRun,
    StepRun,
    WorkflowRun,
    WorkflowVersion,
)
from atom_core.workflows.stores import DETAIL, RUN_COLUMNS, RUNS, STEPS, SessionStore, SqliteStore

logger = logging.getLogger(__name__)
MAP_ITEMS_MAX = 1000
BACKOFF_MAX_S = 3600.0
T = TypeVar("T")


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

    run: RunRow
    step: specs.StepSpec
    attempt: int
    input: Any
    progress: dict[str, Any]

    @property
    def ctx(self) -> Ctx:
        """Steps act as the run's starter, with the role they had when starting it."""
        return Ctx(tenant_id=self.run.tenant_id, user_id=self.run.user_id, role=self.run.role, actor=self.run.actor)


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


class Row:
    """A row as a transition sees it: its loaded columns as attributes, and the
    assignments made to it kept in `changes`, to be written back at the end."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)
        self.__dict__["changes"] = {}

    def __getattr__(self, name: str) -> Any:  # only called for what was not loaded
        raise AttributeError(f"column {name!r} of {type(self).__name__} was not loaded")

    def __setattr__(self, name: str, value: Any) -> None:
        self.__dict__[name] = value
        self.changes[name] = value

    def saved(self) -> None:
        self.__dict__["changes"] = {}


class RunRow(Row):
    """A run's row, every column loaded."""

    def model(self) -> WorkflowRun:
        return WorkflowRun(**{name: self.__dict__[name] for name in RUN_COLUMNS})


class StepRow(Row):
    """One step row. Always loaded: `id`, `step_id`, `status`, `attempts`,
    `error`, `cost_micros` and `queued` (`queued_at` is set); the other columns
    once loaded (`RunState.load`)."""

    def __init__(self, values: dict[str, Any]) -> None:
        super().__init__(values)
        self.__dict__["_full"] = "input" in values

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name == "queued_at":
            self.__dict__["queued"] = value is not None

    @property
    def loaded(self) -> bool:
        return self.__dict__["_full"]


class Store:
    """What a transition asks of its connection (see `stores`)."""

    session: Any
    memo: dict[Any, Any] | None  # kept between transactions while nothing else writes (`db.direct`)

    def lock_run(self, tenant_id: uuid.UUID, run_id: uuid.UUID) -> dict[str, Any] | None: ...
    def spec(self, tenant_id: uuid.UUID, workflow_id: uuid.UUID, version: int) -> dict[str, Any]: ...
    def step_rows(self, tenant_id: uuid.UUID, run_id: uuid.UUID, full: Collection[str] | None) -> Iterable[dict]: ...
    def step_details(self, tenant_id: uuid.UUID, run_id: uuid.UUID, step_ids: list[str] | None) -> Iterable[dict]: ...
    def update(self, table: Any, names: tuple[str, ...], rows: list[dict[str, Any]]) -> None: ...
    def insert_events(self, rows: list[dict[str, Any]]) -> None: ...
    def delete_active(self, run_id: uuid.UUID) -> None: ...
    def add_active(self, tenant_id: uuid.UUID, run_id: uuid.UUID, since: datetime) -> None: ...
    def insert_run(self, run: dict[str, Any], steps: list[dict[str, Any]]) -> None: ...


@dataclass
class RunState:
    """A run, its spec and its step rows, loaded under the run's lock."""

    store: Store
    run: RunRow
    spec: specs.WorkflowSpec
    steps: dict[str, StepRow]
    graph: Graph
    published: list[dict[str, Any]] = field(default_factory=list)
    new_events: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    moment: datetime = field(default_factory=lambda: now())

    @property
    def session(self) -> Any:
        """The SQLAlchemy session, for a transition that writes other tables too (`transact(session=True)`)."""
        return self.store.session

    def emit(self, kind: str, **data: Any) -> None:
        self.run.event_seq += 1
        self.new_events.append((self.run.event_seq, kind, data))
        self.published.append({"id": self.run.event_seq, "type": kind, "run_id": str(self.run.id), **data})

    def load(self, step_ids: Iterable[str] | None) -> None:
        """Load the remaining columns of these steps (None: of every step). Values
        assigned in this transition are kept."""
        if step_ids is None:
            wanted = [r for r in self.steps.values() if not r.loaded]
        else:
            wanted = [row for sid in set(step_ids) if (row := self.steps.get(sid)) and not row.loaded]
        if not wanted:
            return
        names = None if len(wanted) == len(self.steps) else [r.step_id for r in wanted]
        for values in self.store.step_details(self.run.tenant_id, self.run.id, names):
            _merge(self.steps[values["step_id"]], values)

    def write(self) -> None:
        """What this transition changed: step rows grouped by the columns they set, the run, the events."""
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in self.steps.values():
            if row.changes:
                names = tuple(sorted(row.changes))
                groups.setdefault(names, []).append(row.changes | {"id": row.id})
                row.saved()  # the dict just taken is the one written
        for names, rows in groups.items():
            self.store.update(STEPS, names, rows)
        run = self.run
        if run.changes:
            self.store.update(RUNS, tuple(run.changes), [run.changes | {"id": run.id}])
            run.saved()
        if self.new_events:
            self.store.insert_events(
                [
                    {
                        "id": ordered_id(),
                        "tenant_id": run.tenant_id,
                        "run_id": run.id,
                        "seq": seq,
                        "type": kind,
                        "data": data,
                        "created_at": self.moment,
                    }
                    for seq, kind, data in self.new_events
                ]
            )


def _merge(row: StepRow, values: dict[str, Any]) -> None:
    for name in DETAIL:
        row.__dict__.setdefault(name, values[name])  # a value set in this transition wins
    row.__dict__["_full"] = True


def ordered_id() -> uuid.UUID:
    """A UUID (version 7 layout) whose leading bits are the time in milliseconds: rows
    appended all the time (events, steps) then land at the end of the primary key's
    index instead of on a random page of it (which made each insert touch a cold page)."""
    millis = time.time_ns() // 1_000_000
    random = int.from_bytes(os.urandom(10))
    value = (millis << 80) | (0x7 << 76) | ((random >> 62) & 0xFFF) << 64 | (0b10 << 62) | (random & (2**62 - 1))
    return uuid.UUID(int=value)


def system_ctx(tenant_id: uuid.UUID) -> Ctx:
    return Ctx(tenant_id=tenant_id, user_id=None, role="owner", actor="system:workflows")


def now() -> datetime:
    return datetime.now(UTC)


def run_topic(run_id: uuid.UUID) -> str:
    return f"workflow-runs:{run_id}"


_spec_cache: dict[tuple[uuid.UUID, uuid.UUID, int], specs.WorkflowSpec] = {}


def _cached_spec(key: tuple[uuid.UUID, uuid.UUID, int], raw: dict[str, Any]) -> specs.WorkflowSpec:
    """Versions never change, so a parsed spec is cached by (tenant, workflow, version)."""
    parsed = specs.WorkflowSpec.model_validate(raw)
    if len(_spec_cache) > 512:
        _spec_cache.clear()
    _spec_cache[key] = parsed
    return parsed


async def load_spec(session: AsyncSession, run: WorkflowRun) -> specs.WorkflowSpec:
    return await version_spec(session, run.tenant_id, run.workflow_id, run.version)


async def version_spec(
    session: AsyncSession, tenant_id: uuid.UUID, workflow_id: uuid.UUID, version: int
) -> specs.WorkflowSpec:
    """A saved version's spec, parsed (NotFound if there is no such version)."""
    key = (tenant_id, workflow_id, version)
    cached = _spec_cache.get(key)
    if cached is not None:
        return cached
    query = select(WorkflowVersion).where(
        WorkflowVersion.tenant_id == tenant_id,
        WorkflowVersion.workflow_id == workflow_id,
        WorkflowVersion.version == version,
    )
    row = (await session.exec(query)).first()
    if row is None:
        raise NotFound(f"workflow has no version {version}", field="version")
    return _cached_spec(key, row.spec)


def _spec_of(store: Store, run: RunRow) -> specs.WorkflowSpec:
    key = (run.tenant_id, run.workflow_id, run.version)
    cached = _spec_cache.get(key)
    return cached if cached is not None else _cached_spec(key, store.spec(*key))


# Which steps to load in full, given the run's graph (None: all of them).
Detail = Callable[[Graph], Collection[str] | None]
Act = Callable[[RunState], T]


async def transact(
    tenant_id: uuid.UUID,
    run_id: uuid.UUID,
    act: Act[T],
    detail: Detail | None = None,
    *,
    session: bool = False,
    before: Callable[[Store], None] | None = None,
) -> T:
    """Lock the run, `act` on it and write what it changed, in one transaction;
    publish its events after commit. `act` is synchronous: it runs on the
    connection's side (see `stores`). `session=True` for an `act` that writes
    other tables through `state.session` (always a SQLAlchemy session then);
    `before` writes first in the same transaction (a new run's rows). A
    transition that needs a template rendered in a worker is undone, and run
    again once it is (see `rendering`)."""
    prepared = rendering.Prepared()

    def locked(store: Store) -> tuple[RunState, T]:
        with prepared.active():
            if before is not None:
                before(store)
            return _locked(store, tenant_id, run_id, act, detail)

    direct = None if session else get_direct()
    while True:
        try:
            if direct is not None:
                state, result = await direct.transaction(lambda connection, memo: locked(SqliteStore(connection, memo)))
            else:
                async with session_scope(system_ctx(tenant_id)) as scope:
                    state, result = await scope.run_sync(lambda sync_session: locked(SessionStore(sync_session)))
            break
        except rendering.Elsewhere as needed:
            await prepared.fill(needed)
    await publish(state)
    return result


def new_step(tenant_id: uuid.UUID, run_id: uuid.UUID, step_id: str, **values: Any) -> dict[str, Any]:
    """A step row as a new run starts with it (`values` override the defaults)."""
    row: dict[str, Any] = dict.fromkeys(DETAIL)
    row |= {"id": ordered_id(), "tenant_id": tenant_id, "run_id": run_id, "step_id": step_id, "status": "pending"}
    row |= {"attempts": 0, "error": None, "cost_micros": 0, "reused": False, "progress": {}}
    return row | values


async def begin(run: WorkflowRun, steps: list[dict[str, Any]]) -> list[Dispatch]:
    """Insert a new run, its step rows (`new_step`) and its place among the
    active runs, and schedule its first steps, in one transaction."""
    values = {name: getattr(run, name) for name in RUN_COLUMNS}

    def act(state: RunState) -> list[Dispatch]:
        state.emit("run.queued", workflow_id=str(run.workflow_id), version=run.version)
        dispatches = advance(state)
        run.status = state.run.status
        return dispatches

    def insert(store: Store) -> None:
        store.insert_run(values, steps)
        if store.memo is not None:  # the rows as just written, in full: the first transition reads nothing
            rows = {row["step_id"]: StepRow(row | {"queued": 0}) for row in steps}
            store.memo[run.id] = (RunRow(dict(values)), rows)

    return await transact(run.tenant_id, run.id, act, before=insert)


def _locked(
    store: Store, tenant_id: uuid.UUID, run_id: uuid.UUID, act: Act[T], detail: Detail | None
) -> tuple[RunState, T]:
    kept = store.memo.get(run_id) if store.memo is not None else None
    if kept is not None and kept[0].tenant_id == tenant_id:
        run, rows = kept  # rows as this connection's last transaction left them (nothing else wrote since)
    else:
        values = store.lock_run(tenant_id, run_id)
        if values is None:
            raise NotFound("run not found", field="run_id")
        run, rows = RunRow(values), None
    spec = _spec_of(store, run)
    shape = graph(spec)
    full = detail(shape) if detail is not None else ()
    if rows is None:
        rows = {values["step_id"]: StepRow(values) for values in store.step_rows(tenant_id, run_id, full)}
        state = RunState(store, run, spec, rows, shape)
    else:
        state = RunState(store, run, spec, rows, shape)
        state.load(full)
    result = act(state)
    state.write()
    _keep(store, state)
    return state, result


MEMO_RUNS_MAX = 256


def _keep(store: Store, state: RunState) -> None:
    """Remember an active run's rows for its next transition on this connection."""
    memo = store.memo
    if memo is None:
        return
    if state.run.status not in RUN_ACTIVE:
        memo.pop(state.run.id, None)
        return
    if len(memo) >= MEMO_RUNS_MAX:
        memo.clear()
    memo[state.run.id] = (state.run, state.steps)


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
    """What templates see: the run's inputs and the status and output of the
    steps in `reads` (None: of every step), which must have been loaded. A
    template looks up no other step (see `templates.steps_read`)."""
    rows = state.steps
    names = rows if reads is None else reads
    steps = {sid: {"output": rows[sid].output, "status": rows[sid].status} for sid in names if sid in rows}
    return {"inputs": state.run.input, "steps": steps}


def _context_for(state: RunState, reads: frozenset[str] | None) -> dict[str, Any]:
    state.load(reads)
    return context(state, reads)


def _readiness(state: RunState, step: specs.StepSpec) -> str:
    """`ready` or `skip`, for a step whose dependencies are all done."""
    rows = state.steps
    skipped = any(rows[dep].status == "skipped" or _said_no(state, dep) for dep in step.depends_on)
    return "skip" if skipped else "ready"


def _said_no(state: RunState, step_id: str) -> bool:
    """A condition that evaluated false skips its dependents (their outputs are loaded by `advance`)."""
    return step_id in state.graph.conditions and not state.steps[step_id].output


def _occupies(row: StepRow) -> bool:
    """Running, or handed to an executor: it counts against the run's `max_parallel`."""
    return row.status == "running" or (row.status == "pending" and bool(row.queued))


def _in_flight(state: RunState) -> int:
    return sum(1 for r in state.steps.values() if _occupies(r))


def _waiting_on_deps(state: RunState, step: specs.StepSpec) -> bool:
    """A dependency is not done yet (if it failed, so does the run: see `settle`)."""
    rows = state.steps
    for dep in step.depends_on:  # noqa: SIM110 - a plain loop: this runs for every pending step of a transition
        if rows[dep].status not in STEP_DONE:
            return True
    return False


def advance(state: RunState) -> list[Dispatch]:
    """Skip, pause, evaluate or queue every step that can move, then settle the run."""
    if state.run.status not in RUN_ACTIVE:
        return []
    if state.graph.conditions:
        state.load(c for c in state.graph.conditions if state.steps[c].status == "succeeded")
    dispatches: list[Dispatch] = []
    limit, in_flight = state.run.max_parallel, _in_flight(state)
    moved = True
    while moved:  # a condition decided or a step skipped may free its dependents at once
        moved = False
        for step in state.spec.steps:
            row = state.steps[step.id]
            if row.status != "pending" or row.queued or _waiting_on_deps(state, step):
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
            elif verdict == "ready" and in_flight < limit:
                row.queued_at = row.due_at = state.moment
                in_flight += 1
                dispatches.append(Dispatch(state.run.tenant_id, state.run.id, step.id))
    settle(state)
    return dispatches if state.run.status in RUN_ACTIVE else []


def _decide_condition(state: RunState, step: specs.StepSpec, row: StepRow) -> None:
    try:
        value = bool(rendering.evaluate(step.when or "", _context_for(state, state.graph.reads[step.id])))
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


def settle(state: RunState) -> None:
    """The run's status from its steps'."""
    run, rows = state.run, state.steps.values()
    failed, waiting, in_flight, done = None, [], 0, 0
    for row in rows:  # one pass: this runs in every transition
        status = row.status
        if status in STEP_DONE:
            done += 1
        elif status == "failed":
            failed = failed or row
        elif status == "waiting":
            waiting.append(row.step_id)
        elif _occupies(row):
            in_flight += 1
    if failed is not None:
        end(state, "failed", error=f"step '{failed.step_id}' failed: {failed.error or 'no reason given'}")
    elif done == len(rows):
        _succeed(state)
    elif waiting and in_flight == 0:
        if run.status != "waiting":
            run.status = "waiting"
            state.emit("run.waiting", steps=waiting)
    elif run.status == "waiting":
        run.status = "running"


def _succeed(state: RunState) -> None:
    output: Any = None
    if state.spec.output:
        try:
            output = rendering.render(state.spec.output, _context_for(state, state.graph.output_reads))
        except templates.TemplateError as exc:
            end(state, "failed", error=f"output: {exc}")
            return
    else:  # no output template: the output of the last step that ran
        ran = [s.id for s in state.spec.steps if state.steps[s.id].status == "succeeded"]
        if ran:
            state.load(ran[-1:])
            output = state.steps[ran[-1]].output
    state.run.output = output
    end(state, "succeeded")


def end(state: RunState, status: str, *, error: str | None = None) -> None:
    run = state.run
    if run.status not in RUN_ACTIVE:
        return
    run.status, run.error, run.finished_at = status, error, now()
    kind = {"succeeded": "run.finished", "failed": "run.failed", "cancelled": "run.cancelled"}[status]
    state.emit(kind, status=status, output=run.output, error=error, cost_usd=run.cost_micros / 1_000_000)
    state.store.delete_active(run.id)


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
    return await transact(tenant_id, run_id, lambda state: _claim(state, step_id), _with_reads([step_id]))


def _claim(state: RunState, step_id: str) -> Claim | Later | None:
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
    return _take(state, row, step)


def _take(state: RunState, row: StepRow, step: specs.StepSpec) -> Claim | None:
    """Claim a loaded step row: render its input, mark it running under a new lease."""
    try:
        rendered = render_input(state, step)
    except templates.TemplateError as exc:
        _fail_now(state, row, f"input: {exc}")
        return None
    moment = state.moment
    row.status, row.attempts, row.input, row.error = "running", row.attempts + 1, rendered, None
    row.started_at, row.lease_until = moment, moment + timedelta(seconds=get_settings().workflow_lease_s)
    if state.run.status != "running":
        state.run.status = "running"
        state.run.started_at = state.run.started_at or moment
    state.emit("step.started", step_id=step.id, attempt=row.attempts)
    return Claim(run=state.run, step=step, attempt=row.attempts, input=rendered, progress=dict(row.progress))


def _fail_now(state: RunState, row: StepRow, error: str) -> None:
    finish_row(row, "failed", error=error[:2000])
    state.emit("step.failed", step_id=row.step_id, error=row.error)
    settle(state)


def render_input(state: RunState, step: specs.StepSpec) -> Any:
    """A step's input as it will run: the agent's text, the tool's arguments, or the map's item texts.
    The outputs the step reads must be loaded."""
    ctx = context(state, state.graph.reads[step.id])
    if step.type == "tool":
        with rendering.batch():
            return _render_args(step.args, ctx)
    if step.type == "map":
        items = rendering.evaluate(step.over or "", ctx)
        if not isinstance(items, list | tuple):
            raise templates.TemplateError(f"over must give a list, not {type(items).__name__}")
        if len(items) > MAP_ITEMS_MAX:
            raise templates.TemplateError(f"over gave {len(items)} items; at most {MAP_ITEMS_MAX} are allowed")
        text = _input_template(step)
        with rendering.batch():
            return [rendering.render(text, {**ctx, "item": x, "index": i}) for i, x in enumerate(items)]
    return rendering.render(_input_template(step), ctx)


def _input_template(step: specs.StepSpec) -> str:
    return step.input if step.input is not None else specs.default_input(step)


def _render_args(value: Any, ctx: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return rendering.render(value, ctx)
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
    room: int = 0,
) -> list[Dispatch | Claim]:
    """Record a step's success and schedule what it unblocks, in one transaction.

    With `room` (an executor that runs what follows itself, and how many more
    steps it could start now), up to that many of the steps that become ready
    are claimed in the same transaction: their `Claim`s are returned instead of
    `Dispatch`es, and they start without a claim transaction of their own.
    """

    def act(state: RunState) -> list[Dispatch | Claim]:
        row = _owned(state, step_id, attempt)
        if row is None:  # lost the lease meanwhile: the new owner's result counts
            return []
        row.cost_micros += cost_micros
        state.run.cost_micros += cost_micros
        finish_row(row, "succeeded", output=output)
        state.emit("step.finished", step_id=step_id, attempt=attempt, output=output, cost_usd=row.cost_micros / 1e6)
        dispatches = advance(state)
        if room <= 0 or not dispatches:
            return list(dispatches)
        return _claim_now(state, dispatches, room)

    # A step whose only dependency is this one becomes ready now: load it, and what it reads, up front.
    return await transact(tenant_id, run_id, act, _with_reads_of_unblocked(step_id) if room > 0 else None)


def _with_reads_of_unblocked(step_id: str) -> Detail:
    def detail(shape: Graph) -> Collection[str] | None:
        return _with_reads(shape.unblocks.get(step_id, ()))(shape)

    return detail


def _claim_now(state: RunState, dispatches: list[Dispatch], room: int) -> list[Dispatch | Claim]:
    """Claim the first `room` of the steps `advance` just queued; the rest go the usual way."""
    taking, following = dispatches[:room], list[Dispatch | Claim](dispatches[room:])
    state.load(_with_reads([d.step_id for d in taking])(state.graph))
    for dispatch in taking:
        taken = _take(state, state.steps[dispatch.step_id], state.graph.steps[dispatch.step_id])
        if taken is not None:
            following.append(taken)
        if state.run.status not in RUN_ACTIVE:  # its input failed to render, and so did the run
            return [item for item in following if isinstance(item, Claim)]
    return following


async def release(claim: Claim) -> list[Dispatch]:
    """Give back a step `finish` claimed for an executor that then had no room
    for it: it is queued again as it was, to be delivered the usual way."""

    def act(state: RunState) -> list[Dispatch]:
        row = _owned(state, claim.step.id, claim.attempt)
        if row is None:
            return []
        row.status, row.attempts, row.lease_until, row.started_at = "pending", row.attempts - 1, None, None
        row.queued_at = row.due_at = state.moment
        return [Dispatch(claim.run.tenant_id, claim.run.id, claim.step.id)]

    return await transact(claim.run.tenant_id, claim.run.id, act)


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

    def act(state: RunState) -> list[Dispatch]:
        row = _owned(state, step_id, attempt)
        if row is None:
            return []
        row.cost_micros += cost_micros
        state.run.cost_micros += cost_micros
        policy = state.graph.steps[step_id].retry
        if retryable and attempt < policy.max_attempts:
            delay = min(policy.backoff_s * 2 ** (attempt - 1), BACKOFF_MAX_S)
            row.status, row.error, row.lease_until = "pending", error[:2000], None
            row.queued_at, row.due_at = state.moment, state.moment + timedelta(seconds=delay)
            state.emit("step.retrying", step_id=step_id, attempt=attempt, error=row.error, delay_s=delay)
            return [Dispatch(tenant_id, run_id, step_id, delay)]
        _fail_now(state, row, error)
        return []

    return await transact(tenant_id, run_id, act)


async def save_progress(
    tenant_id: uuid.UUID, run_id: uuid.UUID, step_id: str, attempt: int, index: int, output: Any, cost_micros: int
) -> bool:
    """Keep one finished map item, so a retried map never runs it again. False if the lease was lost."""

    def act(state: RunState) -> bool:
        row = _owned(state, step_id, attempt)
        if row is None:
            return False
        row.progress = {**row.progress, str(index): {"output": output, "cost_micros": cost_micros}}
        row.cost_micros += cost_micros
        state.run.cost_micros += cost_micros
        state.emit("step.progress", step_id=step_id, index=index, done=len(row.progress))
        return True

    return await transact(tenant_id, run_id, act, lambda _: (step_id,))


# ------------------------------------------------------------------- recovery


async def active_runs() -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(tenant_id, run_id) of every unfinished run, across tenants (ids only)."""
    async with rls_scope(sweeper=True, readonly=True) as session:
        rows = await session.exec(select(ActiveRun.tenant_id, ActiveRun.run_id).order_by(ActiveRun.since))
        return [(t, r) for t, r in rows.all()]


async def orphans(tenant_id: uuid.UUID, run_id: uuid.UUID, grace_s: float) -> list[Dispatch]:
    return await orphans_in(tenant_id, [run_id], grace_s)


async def orphans_in(tenant_id: uuid.UUID, run_ids: Collection[uuid.UUID], grace_s: float) -> list[Dispatch]:
    """Steps of one tenant's runs that no executor will deliver: queued and overdue
    by `grace_s` (a hand-off lost in a crash), or running with an expired lease.
    One query for all the runs; a waiting run is skipped at no cost (nothing of it
    is in flight: see `settle`), so parked runs do not slow the sweep."""
    moment = now()
    overdue = moment - timedelta(seconds=grace_s)
    lost = (col(StepRun.status) == "pending") & col(StepRun.queued_at).is_not(None) & (col(StepRun.due_at) < overdue)
    dead = (col(StepRun.status) == "running") & (col(StepRun.lease_until) < moment)
    query = (
        select(StepRun.run_id, StepRun.step_id)
        .join(WorkflowRun, col(WorkflowRun.id) == StepRun.run_id)
        .where(StepRun.tenant_id == tenant_id, WorkflowRun.tenant_id == tenant_id)
        .where(col(WorkflowRun.status).in_(RUN_IN_FLIGHT), lost | dead)
    )
    found: list[Dispatch] = []
    async with session_scope(system_ctx(tenant_id), readonly=True) as session:
        for chunk in _chunks(list(run_ids), 500):  # bound the bind parameters of one statement
            rows = await session.exec(query.where(col(StepRun.run_id).in_(chunk)))
            found += [Dispatch(tenant_id, run_id, step_id) for run_id, step_id in rows.all()]
    return found


def _chunks(items: list[T], size: int) -> Iterable[list[T]]:
    return (items[i : i + size] for i in range(0, len(items), size))


def is_final(status: str) -> bool:
    return status in STEP_FINAL
