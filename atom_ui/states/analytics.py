"""State of /analytics: the date range, KPI figures, Plotly figures, recent runs
and one run's trace.

The state holds what the page shows, already shaped: KPI strings, figures
(a few traces of at most one point per day) and at most RECENT_RUNS rows,
never raw runs or spans. The pure helpers below turn a `reports.Summary`
into those, so tests check them without a browser.

Money is shown as the API gives it: micro-dollars / 10^6 with six decimals
(`usd`), so every figure on the page equals the API's `*_usd` value.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import plotly.graph_objects as go
import reflex as rx

from atom_core.analytics import reports
from atom_core.context import Ctx
from atom_core.errors import AtomError, Invalid
from atom_ui.components.formatting import exact_usd as usd
from atom_ui.session import current_ctx, user_message

log = logging.getLogger(__name__)

PRESETS = (7, 30, 90)
DEFAULT_PRESET = 30
MAX_MODELS = 6  # series in the spend-by-model chart; the rest are summed as "other models"
MAX_AGENTS = 15  # bars in the per-agent charts, by spend then runs
DASH = "—"
DAY_MS = 86_400_000


# ---------------------------------------------------------------- formatting


def count(value: int) -> str:
    return f"{value:,}"


def rate(value: float | None) -> str:
    """A success rate as a percentage with one decimal, `—` without finished runs."""
    return DASH if value is None else f"{value * 100:.1f}%"


def millis(value: int | None) -> str:
    return DASH if value is None else f"{value:,} ms"


def when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def model_label(model: str) -> str:
    return reports.model_label(model) if model else DASH


# ---------------------------------------------------------------- the date range


def preset_range(days: int, today: date) -> tuple[str, str]:
    """(from, to) of the last `days` days through today, both shown inclusive."""
    return (today - timedelta(days=days - 1)).isoformat(), today.isoformat()


def to_service_range(from_text: str, to_text: str) -> reports.DateRange:
    """The page shows an inclusive To; the service takes [since, until). Errors name
    the service's fields (`since` is From, `until` is To)."""
    if not from_text:
        raise Invalid("choose a start date", field="since")
    if not to_text:
        raise Invalid("choose an end date", field="until")
    try:
        to_day = date.fromisoformat(to_text)
    except ValueError:
        raise Invalid("the end date must look like 2025-01-31", field="until") from None
    try:
        from_day = date.fromisoformat(from_text)
    except ValueError:
        raise Invalid("the start date must look like 2025-01-31", field="since") from None
    if to_day < from_day:
        raise Invalid("the end date must be on or after the start date", field="until")
    return reports.parse_range(from_day, to_day + timedelta(days=1))


def range_label(window: reports.DateRange) -> str:
    last = window.until - timedelta(days=1)
    days = (window.until - window.since).days
    return f"{window.since.isoformat()} to {last.isoformat()} (UTC), {days} day{'s' if days != 1 else ''}"


# ---------------------------------------------------------------- view models


@dataclass
class Kpi:
    key: str = ""
    label: str = ""
    value: str = ""
    detail: str = ""


@dataclass
class RunItem:
    id: str = ""
    agent: str = ""
    status: str = ""
    model: str = ""
    tokens: str = ""
    cost: str = ""
    latency: str = ""
    created: str = ""


@dataclass
class SpanItem:
    name: str = ""
    kind: str = ""
    status: str = ""
    error: str = ""
    detail: str = ""  # model, tokens
    duration: str = ""
    cost: str = ""
    indent: str = "0rem"
    offset: str = "0%"  # where the bar starts in the waterfall
    width: str = "0%"


def kpi_items(summary: reports.Summary) -> list[Kpi]:
    t = summary.totals
    return [
        Kpi("spend", "Spend", usd(t.spend_micros), f"{count(t.llm_calls)} model calls"),
        Kpi("runs", "Runs", count(t.runs), f"{count(t.succeeded)} succeeded · {count(t.failed)} failed"),
        Kpi("success-rate", "Success rate", rate(t.success_rate), f"of {count(t.finished)} finished runs"),
        Kpi(
            "tokens",
            "Tokens",
            count(t.prompt_tokens + t.completion_tokens),
            f"{count(t.prompt_tokens)} in · {count(t.completion_tokens)} out",
        ),
        Kpi("latency-p50", "Latency p50", millis(t.latency_p50_ms), "per run, median"),
        Kpi("latency-p95", "Latency p95", millis(t.latency_p95_ms), "per run, 95th percentile"),
    ]


def run_items(summary: reports.Summary) -> list[RunItem]:
    return [
        RunItem(
            id=str(run.id),
            agent=run.agent_slug,
            status=run.status,
            model=model_label(run.model),
            tokens=count(run.prompt_tokens + run.completion_tokens),
            cost=usd(run.cost_micros),
            latency=millis(run.latency_ms) if run.status != "running" else DASH,
            created=when(run.created_at),
        )
        for run in summary.recent_runs
    ]


def span_items(view: reports.TraceView) -> list[SpanItem]:
    total = max(view.total_ms, 1)
    items = []
    for span in view.spans:
        duration = span.duration_ms or 0
        details = [f"answered by {span.model}"] if span.model and span.model != span.name else []  # a fallback
        if span.prompt_tokens or span.completion_tokens:
            details.append(f"{count(span.prompt_tokens)} in · {count(span.completion_tokens)} out")
        items.append(
            SpanItem(
                name=span.name,
                kind=span.kind,
                status=span.status,
                error=span.error or "",
                detail=" · ".join(details),
                duration=millis(span.duration_ms) if span.duration_ms is not None else "unfinished",
                cost=usd(span.cost_micros),
                indent=f"{span.depth * 1.25:g}rem",
                offset=f"{min(span.offset_ms / total, 1) * 100:.2f}%",
                width=f"{max(min(duration / total, 1) * 100, 0.5):.2f}%",
            )
        )
    return items


# ---------------------------------------------------------------- figures


def _layout(window: reports.DateRange | None = None, **extra: Any) -> dict[str, Any]:
    """Transparent backgrounds and an empty template: rx.plotly adds the light or dark template."""
    layout: dict[str, Any] = {
        "template": go.layout.Template(),
        "height": 300,
        "margin": {"l": 8, "r": 8, "t": 8, "b": 8},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "legend": {"orientation": "h", "yanchor": "top", "y": -0.15, "x": 0},
        "hovermode": "closest",
        "yaxis": {"automargin": True, "rangemode": "tozero"},
        "xaxis": {"automargin": True},
    }
    if window is not None:  # every day of the range on the axis, even days without runs
        half_day = timedelta(hours=12)
        start = datetime.combine(window.since, datetime.min.time()) - half_day
        end = datetime.combine(window.until, datetime.min.time()) - half_day
        layout["xaxis"] |= {"type": "date", "range": [start.isoformat(), end.isoformat()]}
    return layout | extra


def _dollars(micros: int) -> float:
    return micros / 1_000_000


def _daily(window: reports.DateRange) -> dict[str, Any]:
    """Evenly spaced days: one start and a step instead of a date per point (a third of the bytes)."""
    return {"x0": window.since.isoformat(), "dx": DAY_MS}


def spend_by_day_figure(summary: reports.Summary) -> go.Figure:
    """Spend per day, one stacked bar series per model (the costliest MAX_MODELS, then the rest)."""
    ranked = [m.model for m in summary.models if m.spend_micros > 0]
    shown, rest = ranked[:MAX_MODELS], set(ranked[MAX_MODELS:])
    names = [model_label(m) for m in shown] + (["other models"] if rest else [])
    series = {name: [0] * len(summary.days) for name in names}
    for index, day in enumerate(summary.days):
        for model, micros in day.spend_by_model.items():
            if micros > 0:
                series["other models" if model in rest else model_label(model)][index] += micros
    bars = [
        go.Bar(
            name=name,
            y=[_dollars(v) for v in values],
            hovertemplate="%{x|%Y-%m-%d}<br>%{fullData.name}: $%{y:,.6f}<extra></extra>",
            **_daily(summary.range),
        )
        for name, values in series.items()
    ]
    return go.Figure(bars, layout=_layout(summary.range, barmode="stack", yaxis={"tickprefix": "$"}))


def tokens_by_day_figure(summary: reports.Summary) -> go.Figure:
    bars = [
        go.Bar(name="prompt (in)", y=[d.prompt_tokens for d in summary.days], **_daily(summary.range)),
        go.Bar(name="completion (out)", y=[d.completion_tokens for d in summary.days], **_daily(summary.range)),
    ]
    for bar in bars:
        bar.hovertemplate = "%{x|%Y-%m-%d}<br>%{fullData.name}: %{y:,} tokens<extra></extra>"
    return go.Figure(bars, layout=_layout(summary.range, barmode="stack"))


def _top_agents(summary: reports.Summary) -> list[reports.AgentUsage]:
    return summary.agents[:MAX_AGENTS]  # the service sorts by spend, then runs


def spend_by_agent_figure(summary: reports.Summary) -> go.Figure:
    agents = list(reversed(_top_agents(summary)))  # the costliest at the top
    bar = go.Bar(
        x=[_dollars(a.spend_micros) for a in agents],
        y=[a.agent_slug for a in agents],
        orientation="h",
        customdata=[usd(a.spend_micros) for a in agents],
        hovertemplate="%{y}: %{customdata}<extra></extra>",
        name="spend",
    )
    return go.Figure([bar], layout=_layout(xaxis={"tickprefix": "$", "rangemode": "tozero", "automargin": True}))


def latency_figure(summary: reports.Summary) -> go.Figure:
    """p50 and p95 per agent as horizontal bars (agent names stay readable however many there
    are), the legend above the plot, and a row of height per agent."""
    agents = list(reversed([a for a in _top_agents(summary) if a.latency_p50_ms is not None]))
    names = [a.agent_slug for a in agents]
    bars = [
        go.Bar(name="p50", y=names, x=[a.latency_p50_ms for a in agents], orientation="h"),
        go.Bar(name="p95", y=names, x=[a.latency_p95_ms for a in agents], orientation="h"),
    ]
    for bar in bars:
        bar.hovertemplate = "%{y} %{fullData.name}: %{x:,} ms<extra></extra>"
    return go.Figure(
        bars,
        layout=_layout(
            barmode="group",
            height=max(300, 60 + 28 * len(agents)),
            margin={"l": 8, "r": 8, "t": 32, "b": 8},
            legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0},
            xaxis={"ticksuffix": " ms", "rangemode": "tozero", "automargin": True},
            yaxis={"automargin": True},
        ),
    )


def success_figure(summary: reports.Summary) -> go.Figure:
    agents = [a for a in _top_agents(summary) if a.success_rate is not None]
    bar = go.Bar(
        name="success rate",
        x=[a.agent_slug for a in agents],
        y=[round(a.success_rate * 100, 1) for a in agents],
        text=[rate(a.success_rate) for a in agents],
        customdata=[f"{a.succeeded} of {a.finished} finished runs" for a in agents],
        hovertemplate="%{x}: %{text} (%{customdata})<extra></extra>",
    )
    return go.Figure([bar], layout=_layout(yaxis={"range": [0, 105], "ticksuffix": "%"}))


def empty_figure() -> go.Figure:
    return go.Figure(layout=_layout())


# ---------------------------------------------------------------- the state


class AnalyticsState(rx.State):
    from_text: str = ""  # YYYY-MM-DD, included
    to_text: str = ""  # YYYY-MM-DD, included (the service's `until` is the day after)
    preset: int = DEFAULT_PRESET  # 0: a custom range
    shown_range: str = ""
    field_errors: dict[str, str] = {}
    error: str = ""
    loading: bool = False
    loaded: bool = False
    has_runs: bool = False
    has_spend: bool = False
    has_tokens: bool = False
    has_latency: bool = False
    has_finished: bool = False

    kpis: list[Kpi] = []
    spend_by_day: go.Figure = empty_figure()
    spend_by_agent: go.Figure = empty_figure()
    tokens_by_day: go.Figure = empty_figure()
    latency: go.Figure = empty_figure()
    success: go.Figure = empty_figure()
    runs: list[RunItem] = []

    shown_tenant: str = ""  # whose figures these are: the page shows them only to that tenant

    trace_open: bool = False
    trace_loading: bool = False
    trace_error: str = ""
    trace_title: str = ""
    trace_summary: str = ""
    trace_run_error: str = ""
    trace_spans: list[SpanItem] = []

    @rx.event
    async def load(self):
        """on_load: the last 30 days the first time, then the range the user chose."""
        ctx = await self._caller()
        if ctx is None:
            return
        self._forget_other_tenant(ctx)
        if not self.from_text or not self.to_text:
            self.from_text, self.to_text = preset_range(self.preset or DEFAULT_PRESET, reports.today())
        async for update in self._reload(ctx):
            yield update

    @rx.event
    async def tenant_changed(self):
        """Mounted again under a new workspace key: reload if the figures are another tenant's."""
        if not self.loaded or (ctx := await self._caller()) is None:
            return
        if self._forget_other_tenant(ctx):
            async for update in self._reload(ctx):
                yield update

    async def _caller(self) -> Ctx | None:
        try:
            return await current_ctx(self)
        except Exception as err:
            self.error = user_message(err)
            return None

    def _forget_other_tenant(self, ctx: Ctx) -> bool:
        """Drop another workspace's figures (after a switch, or another user in this tab)
        before anything is sent; True if there were some."""
        if not self.shown_tenant or self.shown_tenant == str(ctx.tenant_id):
            return False
        chosen = self.from_text, self.to_text, self.preset
        self.reset()  # back to the defaults: nothing of the other tenant stays in this state
        self.from_text, self.to_text, self.preset = chosen  # the range is the user's, not the tenant's
        return True

    @rx.event
    def set_from(self, value: str):
        self.from_text, self.preset = value, 0
        self.field_errors = {k: v for k, v in self.field_errors.items() if k != "since"}

    @rx.event
    def set_to(self, value: str):
        self.to_text, self.preset = value, 0
        self.field_errors = {k: v for k, v in self.field_errors.items() if k != "until"}

    @rx.event
    async def apply_range(self):
        async for update in self._reload():
            yield update

    @rx.event
    async def apply_preset(self, days: int):
        self.preset = int(days)
        self.from_text, self.to_text = preset_range(self.preset, reports.today())
        async for update in self._reload():
            yield update

    async def _reload(self, ctx: Ctx | None = None):
        self.field_errors, self.error, self.loading = {}, "", True
        yield
        try:
            window = to_service_range(self.from_text, self.to_text)
            ctx = ctx or await current_ctx(self)
            summary = await reports.summary(ctx, window.since, window.until)
        except AtomError as err:
            self.loading = False
            if err.field in ("since", "until"):
                self.field_errors = {err.field: user_message(err)}
            else:
                self.error = user_message(err)
            return
        except Exception as err:
            self.loading = False
            self.error = user_message(err)
            return
        self.shown_tenant = str(ctx.tenant_id)
        self._show(summary)

    def _show(self, summary: reports.Summary) -> None:
        self.shown_range = range_label(summary.range)
        self.kpis = kpi_items(summary)
        totals = summary.totals
        self.has_runs = totals.runs > 0
        self.has_spend = totals.spend_micros > 0
        self.has_tokens = totals.prompt_tokens + totals.completion_tokens > 0
        self.has_latency = totals.latency_p50_ms is not None
        self.has_finished = totals.finished > 0
        self.spend_by_day = spend_by_day_figure(summary)
        self.spend_by_agent = spend_by_agent_figure(summary)
        self.tokens_by_day = tokens_by_day_figure(summary)
        self.latency = latency_figure(summary)
        self.success = success_figure(summary)
        self.runs = run_items(summary)
        self.loading, self.loaded = False, True

    @rx.event
    async def open_trace(self, run_id: str):
        self.trace_open, self.trace_loading, self.trace_error = True, True, ""
        self.trace_title, self.trace_summary, self.trace_run_error, self.trace_spans = "Trace", "", "", []
        yield
        try:
            view = await reports.trace(await current_ctx(self), run_id)
        except Exception as err:
            self.trace_loading, self.trace_error = False, user_message(err)
            return
        run = view.run
        self.trace_title = f"Trace of {run.agent_slug}"
        self.trace_summary = " · ".join(
            [
                run.status,
                when(run.created_at),
                millis(view.total_ms),
                usd(run.cost_micros),
                f"{count(run.prompt_tokens + run.completion_tokens)} tokens",
            ]
        )
        self.trace_run_error = view.error or ""
        self.trace_spans = span_items(view)
        self.trace_loading = False

    @rx.event
    def set_trace_open(self, value: bool):
        self.trace_open = value
        if not value:
            self.trace_spans = []
