"""Cost, usage and reliability reports over a tenant's agent runs, and one run's trace.

What counts where:

- **Spend and tokens** come from `llm.call` spans: every model call is billed,
  including those of a run that failed later (the run's own `cost_micros`
  keeps only what a finished loop accounted for).
- **Runs, success rate and latency** come from `agent_runs`.
- Everything is bucketed by the run's `created_at` (UTC day), so a run and
  its model calls always fall in the same day and the same range.
- Workflow runs are reported on their own: their agent steps are agent runs,
  so their spend is already in the totals.

Sums and percentiles are done by the database with SQL both SQLite and
PostgreSQL run (GROUP BY, window functions), so the rows returned stay few
whatever the volume: a few per day, model and agent.
Money stays in integer micro-dollars here; interfaces convert at the edge.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import func, select

from atom_core.agents import runtime
from atom_core.agents.runs import AgentRun
from atom_core.analytics.models import SpanRecord
from atom_core.context import Ctx
from atom_core.db import get_engine, session_scope
from atom_core.errors import Invalid
from atom_core.llm import OFFLINE_MODEL
from atom_core.tenancy import permissions
from atom_core.workflows.models import WorkflowRun

DEFAULT_DAYS = 30
MAX_DAYS = 366
RECENT_RUNS = 20
PERCENTILES = (50, 95)
FINISHED = ("succeeded", "failed", "cancelled")
OFFLINE_LABEL = "offline model (no provider)"


# --- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DateRange:
    """UTC days [since, until): `until` is the first day not included."""

    since: date
    until: date

    @property
    def days(self) -> list[date]:
        return [self.since + timedelta(days=n) for n in range((self.until - self.since).days)]

    @property
    def start(self) -> datetime:
        return datetime.combine(self.since, time(0), UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.until, time(0), UTC)


@dataclass
class DayUsage:
    day: date
    spend_micros: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    runs: int = 0
    spend_by_model: dict[str, int] = field(default_factory=dict)  # micro-dollars per model


@dataclass
class ModelUsage:
    model: str
    calls: int = 0
    spend_micros: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def label(self) -> str:
        return model_label(self.model)


@dataclass
class RunCounts:
    runs: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.cancelled

    @property
    def success_rate(self) -> float | None:
        """Succeeded / finished runs (running ones are not counted); None without finished runs."""
        return self.succeeded / self.finished if self.finished else None

    def add(self, status: str, count: int) -> None:
        self.runs += count
        if status in FINISHED:
            setattr(self, status, getattr(self, status) + count)


@dataclass
class AgentUsage(RunCounts):
    agent_slug: str = ""
    spend_micros: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    llm_calls: int = 0
    latency_p50_ms: int | None = None
    latency_p95_ms: int | None = None


@dataclass
class Totals(RunCounts):
    spend_micros: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    llm_calls: int = 0
    latency_p50_ms: int | None = None
    latency_p95_ms: int | None = None


@dataclass
class WorkflowTotals(RunCounts):
    cost_micros: int = 0


@dataclass(frozen=True)
class RunRow:
    id: uuid.UUID
    agent_slug: str
    status: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_micros: int
    latency_ms: int
    created_at: datetime

    @classmethod
    def of(cls, run: AgentRun) -> RunRow:
        return cls(
            run.id,
            run.agent_slug,
            run.status,
            run.model,
            run.prompt_tokens,
            run.completion_tokens,
            run.cost_micros,
            run.latency_ms,
            run.created_at,
        )


@dataclass
class Summary:
    range: DateRange
    totals: Totals
    days: list[DayUsage]  # every day of the range, in order (zeros included)
    models: list[ModelUsage]  # by spend, then tokens, then name
    agents: list[AgentUsage]  # by spend, then runs, then slug
    workflows: WorkflowTotals
    recent_runs: list[RunRow]  # newest first, at most RECENT_RUNS


@dataclass(frozen=True)
class TraceSpan:
    id: uuid.UUID
    parent_id: uuid.UUID | None
    depth: int
    kind: str
    name: str
    status: str
    error: str | None
    model: str | None
    started_at: datetime
    offset_ms: int  # from the trace's first span
    duration_ms: int | None  # None while the span never ended
    prompt_tokens: int
    completion_tokens: int
    cost_micros: int


@dataclass(frozen=True)
class TraceView:
    run: RunRow
    error: str | None
    total_ms: int
    spans: list[TraceSpan]  # depth first, children in start order (the span tree, flattened)


# --- helpers ------------------------------------------------------------------------------


def model_label(model: str) -> str:
    """How to show a model: the offline model is marked as such (as agents' `model_label`)."""
    return OFFLINE_LABEL if model == OFFLINE_MODEL else model


def today() -> date:
    return datetime.now(UTC).date()


def parse_range(since: date | str | None = None, until: date | str | None = None) -> DateRange:
    """The range asked for; without `until`, through today (UTC); without `since`, DEFAULT_DAYS days."""
    end = _as_date(until, "until") if until not in (None, "") else today() + timedelta(days=1)
    start = _as_date(since, "since") if since not in (None, "") else end - timedelta(days=DEFAULT_DAYS)
    if start > end:
        raise Invalid("since must be on or before until", field="since")
    if (end - start).days > MAX_DAYS:
        raise Invalid(f"the range must span at most {MAX_DAYS} days", field="until")
    return DateRange(start, end)


def _as_date(value: date | str | None, name: str) -> date:
    if isinstance(value, datetime):
        raise Invalid(f"{name} must be a date (YYYY-MM-DD), not a time", field=name)
    if isinstance(value, date):
        return value
    if isinstance(value, str) and len(value.strip()) == 10:
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise Invalid(f"{name} must be a date like 2025-01-31 (YYYY-MM-DD, UTC)", field=name)


def percentile(sorted_values: list[int], pct: int) -> int | None:
    """Nearest-rank percentile of ascending values (an observed value, never an interpolation):
    the value at rank ceil(pct/100 x n). `_latency_query` computes the same in SQL."""
    if not sorted_values:
        return None
    return sorted_values[_rank(len(sorted_values), pct) - 1]


def _rank(n: int, pct: int) -> int:
    """ceil(pct x n / 100) in integers, exactly as `_latency_query` computes it."""
    return max(1, (pct * n + 99) // 100)


def _day(column: Any, dialect: str) -> Any:
    """The UTC calendar day of a timestamp column (a date on PostgreSQL, 'YYYY-MM-DD' on SQLite)."""
    if dialect == "postgresql":
        return func.date(func.timezone(sa.literal_column("'UTC'"), column))
    return func.date(column)  # SQLite stores UTC text (see UTCDateTime)


def _to_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


# --- the summary --------------------------------------------------------------------------


async def summary(ctx: Ctx, since: date | str | None = None, until: date | str | None = None) -> Summary:
    """Spend, tokens, runs, success rate and latency over [since, until), for the caller's tenant."""
    permissions.require(ctx, "agents.read")
    window = parse_range(since, until)
    dialect = get_engine().dialect.name
    in_range = (
        AgentRun.tenant_id == ctx.tenant_id,
        AgentRun.created_at >= window.start,
        AgentRun.created_at < window.end,
    )
    async with session_scope(ctx, readonly=True) as session:
        call_rows = (await session.exec(_calls_query(ctx, in_range, dialect))).all()
        run_rows = (await session.exec(_runs_query(in_range, dialect))).all()
        latency_rows = (await session.exec(_latency_query(in_range))).all()
        recent = (
            await session.exec(
                select(AgentRun).where(*in_range).order_by(AgentRun.created_at.desc()).limit(RECENT_RUNS)
            )
        ).all()
        workflow_rows = (await session.exec(_workflows_query(ctx, window))).all()

    days = {day: DayUsage(day) for day in window.days}
    models: dict[str, ModelUsage] = {}
    agents: dict[str, AgentUsage] = {}
    totals = Totals()

    def agent(slug: str) -> AgentUsage:
        return agents.setdefault(slug, AgentUsage(agent_slug=slug))

    for day_value, model, slug, calls, cost, prompt, completion in call_rows:
        cost, prompt, completion, calls = int(cost or 0), int(prompt or 0), int(completion or 0), int(calls)
        bucket = days.get(_to_date(day_value))
        if bucket is not None:
            bucket.spend_micros += cost
            bucket.prompt_tokens += prompt
            bucket.completion_tokens += completion
            bucket.spend_by_model[model] = bucket.spend_by_model.get(model, 0) + cost
        usage = models.setdefault(model, ModelUsage(model))
        who = agent(slug)
        for target in (usage, who, totals):
            target.spend_micros += cost
            target.prompt_tokens += prompt
            target.completion_tokens += completion
        usage.calls += calls
        who.llm_calls += calls
        totals.llm_calls += calls

    for day_value, slug, status, count in run_rows:
        count = int(count)
        if (bucket := days.get(_to_date(day_value))) is not None:
            bucket.runs += count
        agent(slug).add(status, count)
        totals.add(status, count)

    for slug, latency_ms, agent_rank, agent_runs, rank, runs in latency_rows:
        # A row is a percentile of its agent, of all runs, or both (see _latency_query).
        for pct in PERCENTILES:
            if agent_rank == _rank(agent_runs, pct):
                setattr(agent(slug), f"latency_p{pct}_ms", int(latency_ms))
            if rank == _rank(runs, pct):
                setattr(totals, f"latency_p{pct}_ms", int(latency_ms))

    workflows = WorkflowTotals()
    for status, count, cost in workflow_rows:
        workflows.add(status, int(count))
        workflows.cost_micros += int(cost or 0)

    return Summary(
        range=window,
        totals=totals,
        days=list(days.values()),
        models=sorted(
            models.values(), key=lambda m: (-m.spend_micros, -(m.prompt_tokens + m.completion_tokens), m.model)
        ),
        agents=sorted(agents.values(), key=lambda a: (-a.spend_micros, -a.runs, a.agent_slug)),
        workflows=workflows,
        recent_runs=[RunRow.of(run) for run in recent],
    )


def _calls_query(ctx: Ctx, in_range: tuple, dialect: str) -> Any:
    """Model calls of the range's runs, summed per (day, model, agent).

    The model is the one that answered (`attributes.model`, set by the gateway),
    else the one asked for (the span's name). Grouping by output names keeps the
    JSON path's bind parameter out of GROUP BY (PostgreSQL would not match it).
    """
    answered = SpanRecord.attributes["model"].as_string()
    return (
        sa.select(
            _day(AgentRun.created_at, dialect).label("usage_day"),
            func.coalesce(answered, SpanRecord.name).label("usage_model"),
            AgentRun.agent_slug.label("usage_agent"),
            func.count(),
            func.sum(SpanRecord.cost_micros),
            func.sum(SpanRecord.prompt_tokens),
            func.sum(SpanRecord.completion_tokens),
        )
        .select_from(AgentRun)
        # Through (tenant_id, trace_id), the spans' composite index: a plan on the
        # run_id index alone degrades badly on PostgreSQL before the first ANALYZE.
        .join(SpanRecord, sa.and_(SpanRecord.tenant_id == AgentRun.tenant_id, SpanRecord.trace_id == AgentRun.trace_id))
        .where(*in_range, SpanRecord.tenant_id == ctx.tenant_id, SpanRecord.kind == "llm.call")
        .group_by(sa.literal_column("usage_day"), sa.literal_column("usage_model"), sa.literal_column("usage_agent"))
    )


def _runs_query(in_range: tuple, dialect: str) -> Any:
    return (
        sa.select(
            _day(AgentRun.created_at, dialect).label("run_day"), AgentRun.agent_slug, AgentRun.status, func.count()
        )
        .where(*in_range)
        .group_by(sa.literal_column("run_day"), AgentRun.agent_slug, AgentRun.status)
    )


def _latency_query(in_range: tuple) -> Any:
    """The finished runs whose latency is a nearest-rank percentile, per agent and overall.

    Window functions rank the latencies inside the database; only the rows at
    rank ceil(p x n / 100) come back, at most two per agent plus two. Integer
    arithmetic, (p x n + 99) // 100, gives the same rank on SQLite and PostgreSQL.
    """
    finished = (
        sa.select(
            AgentRun.agent_slug,
            AgentRun.latency_ms,
            func.row_number()
            .over(partition_by=AgentRun.agent_slug, order_by=[AgentRun.latency_ms, AgentRun.id])
            .label("agent_rank"),
            func.count().over(partition_by=AgentRun.agent_slug).label("agent_runs"),
            func.row_number().over(order_by=[AgentRun.latency_ms, AgentRun.id]).label("run_rank"),
            func.count().over().label("runs"),
        )
        .where(*in_range, AgentRun.status.in_(FINISHED))
        .subquery()
    )
    wanted = [
        condition
        for pct in PERCENTILES
        for condition in (
            finished.c.agent_rank == (finished.c.agent_runs * pct + 99) // 100,
            finished.c.run_rank == (finished.c.runs * pct + 99) // 100,
        )
    ]
    return sa.select(
        finished.c.agent_slug,
        finished.c.latency_ms,
        finished.c.agent_rank,
        finished.c.agent_runs,
        finished.c.run_rank,
        finished.c.runs,
    ).where(sa.or_(*wanted))


def _workflows_query(ctx: Ctx, window: DateRange) -> Any:
    return (
        sa.select(WorkflowRun.status, func.count(), func.sum(WorkflowRun.cost_micros))
        .where(
            WorkflowRun.tenant_id == ctx.tenant_id,
            WorkflowRun.created_at >= window.start,
            WorkflowRun.created_at < window.end,
        )
        .group_by(WorkflowRun.status)
    )


# --- one run's trace ----------------------------------------------------------------------


async def trace(ctx: Ctx, run_id: uuid.UUID | str) -> TraceView:
    """The run's span tree, flattened depth first, with offsets, durations, tokens and cost."""
    if not isinstance(run_id, uuid.UUID):
        try:
            run_id = uuid.UUID(str(run_id))
        except ValueError:
            raise Invalid("run_id must be a run id (UUID)", field="run_id") from None
    run = await runtime.get_run(ctx, run_id)  # checks agents.read; NotFound outside the tenant
    spans = await runtime.get_spans(ctx, run)
    origin = min((s.started_at for s in spans), default=run.created_at)
    last = max((s.ended_at or s.started_at for s in spans), default=origin)
    return TraceView(
        run=RunRow.of(run),
        error=run.error,
        total_ms=_ms(last - origin),
        spans=flatten(spans, origin),
    )


def flatten(spans: list[SpanRecord], origin: datetime) -> list[TraceSpan]:
    """Depth first, children in start order; a span whose parent is missing is a root."""
    ordered = sorted(spans, key=lambda s: s.started_at)
    ids = {s.id for s in ordered}
    children: dict[uuid.UUID | None, list[SpanRecord]] = defaultdict(list)
    for span in ordered:
        children[span.parent_id if span.parent_id in ids else None].append(span)
    out: list[TraceSpan] = []
    stack = [(span, 0) for span in reversed(children[None])]
    while stack:
        span, depth = stack.pop()
        out.append(_trace_span(span, depth, origin))
        stack.extend((child, depth + 1) for child in reversed(children[span.id]))
    return out


def _trace_span(span: SpanRecord, depth: int, origin: datetime) -> TraceSpan:
    model = span.attributes.get("model") if span.kind == "llm.call" else None
    return TraceSpan(
        id=span.id,
        parent_id=span.parent_id,
        depth=depth,
        kind=span.kind,
        name=span.name,
        status=span.status,
        error=span.error,
        model=str(model) if model else None,
        started_at=span.started_at,
        offset_ms=_ms(span.started_at - origin),
        duration_ms=_ms(span.ended_at - span.started_at) if span.ended_at else None,
        prompt_tokens=span.prompt_tokens,
        completion_tokens=span.completion_tokens,
        cost_micros=span.cost_micros,
    )


def _ms(delta: timedelta) -> int:
    return max(0, int(delta.total_seconds() * 1000))
