"""The Analytics page state without a browser: formatting, the date range, the
figures and trace rows built from a summary, and the handlers run against the
real services on both backends (numbers equal the API's, state stays small)."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from reflex_base.utils.format import json_dumps

from atom_core.agents import runtime
from atom_core.agents import service as agents
from atom_core.analytics import reports
from atom_core.context import Ctx
from atom_core.errors import Invalid
from atom_core.tenancy import service as tenancy
from atom_ui.states import analytics as view
from atom_ui.states.analytics import AnalyticsState

PAGE_STATE_LIMIT = 100_000  # bytes of serialized page state (issue 5)


# ------------------------------------------------------------------ formatting


def test_usd_shows_exact_micro_dollars_with_six_decimals() -> None:
    assert view.usd(0) == "$0.000000"
    assert view.usd(525) == "$0.000525"
    assert view.usd(1_000_000) == "$1.000000"
    assert view.usd(1_234_567_891) == "$1,234.567891"
    assert view.usd(-5) == "-$0.000005"


def test_counts_rates_and_milliseconds() -> None:
    assert (view.count(1234567), view.rate(2 / 3), view.rate(1.0), view.rate(None)) == (
        "1,234,567",
        "66.7%",
        "100.0%",
        "—",
    )
    assert (view.millis(1234), view.millis(None)) == ("1,234 ms", "—")
    assert view.model_label("atom/offline") == "offline model (no provider)"
    assert (view.model_label("openai/gpt-4o-mini"), view.model_label("")) == ("openai/gpt-4o-mini", "—")


# ------------------------------------------------------------------ the date range


def test_presets_end_today_and_include_it() -> None:
    assert view.preset_range(7, date(2025, 3, 10)) == ("2025-03-04", "2025-03-10")
    assert view.preset_range(30, date(2025, 3, 10)) == ("2025-02-09", "2025-03-10")


def test_the_inclusive_end_becomes_the_services_exclusive_until() -> None:
    window = view.to_service_range("2025-03-04", "2025-03-10")
    assert (window.since, window.until, len(window.days)) == (date(2025, 3, 4), date(2025, 3, 11), 7)
    assert view.range_label(window) == "2025-03-04 to 2025-03-10 (UTC), 7 days"
    assert view.range_label(view.to_service_range("2025-03-04", "2025-03-04")).endswith("1 day")


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        ("", "2025-03-10", "since"),
        ("2025-03-04", "", "until"),
        ("03/04/2025", "2025-03-10", "since"),
        ("2025-03-04", "2025-02-30", "until"),
        ("2025-03-10", "2025-03-04", "until"),
        ("2024-01-01", "2025-01-01", "until"),  # 367 days
    ],
)
def test_bad_ranges_name_the_field(start: str, end: str, field: str) -> None:
    with pytest.raises(Invalid) as error:
        view.to_service_range(start, end)
    assert error.value.field == field


def test_a_full_leap_year_is_accepted() -> None:
    assert len(view.to_service_range("2024-01-01", "2024-12-31").days) == 366


# ------------------------------------------------------------------ figures from a summary


def _summary(days: int = 3, models: int = 2, agents_count: int = 2) -> reports.Summary:
    window = reports.DateRange(date(2025, 1, 1), date(2025, 1, 1) + timedelta(days=days))
    names = [f"openai/model-{n}" for n in range(models)]
    day_rows = [
        reports.DayUsage(
            day,
            spend_micros=sum(100 * (m + 1) for m in range(models)),
            prompt_tokens=10 * (i + 1),
            completion_tokens=i,
            runs=1,
            spend_by_model={name: 100 * (m + 1) for m, name in enumerate(names)},
        )
        for i, day in enumerate(window.days)
    ]
    model_rows = [reports.ModelUsage(name, days, 100 * (m + 1) * days, 1, 1) for m, name in enumerate(names)]
    model_rows.sort(key=lambda m: -m.spend_micros)
    agent_rows = [
        reports.AgentUsage(
            runs=4, succeeded=3, failed=1, agent_slug=f"agent-{n}", spend_micros=1000 - n, latency_p50_ms=100 + n
        )
        for n in range(agents_count)
    ]
    for a in agent_rows:
        a.latency_p95_ms = a.latency_p50_ms * 2
    totals = reports.Totals(runs=4 * agents_count, succeeded=3 * agents_count, failed=agents_count)
    totals.spend_micros = sum(d.spend_micros for d in day_rows)
    return reports.Summary(window, totals, day_rows, model_rows, agent_rows, reports.WorkflowTotals(), [])


def test_spend_by_day_stacks_one_series_per_model() -> None:
    figure = view.spend_by_day_figure(_summary())
    assert figure.layout.barmode == "stack"
    assert [bar.name for bar in figure.data] == ["openai/model-1", "openai/model-0"]  # costliest first
    assert list(figure.data[0].y) == [0.0002] * 3 and list(figure.data[1].y) == [0.0001] * 3
    assert (figure.data[1].x0, figure.data[1].dx) == ("2025-01-01", 86_400_000)  # one bar a day
    assert list(figure.layout.xaxis.range) == ["2024-12-31T12:00:00", "2025-01-03T12:00:00"]


def test_models_beyond_the_limit_are_summed_as_other_models() -> None:
    figure = view.spend_by_day_figure(_summary(models=view.MAX_MODELS + 3))
    names = [bar.name for bar in figure.data]
    assert len(names) == view.MAX_MODELS + 1 and names[-1] == "other models"
    assert list(figure.data[-1].y) == [(100 + 200 + 300) / 1_000_000] * 3  # the three cheapest
    sparse = _summary(days=3)
    sparse.days[1].spend_by_model = {}
    assert list(view.spend_by_day_figure(sparse).data[0].y) == [0.0002, 0, 0.0002]


def test_per_agent_figures() -> None:
    summary = _summary()
    spend = view.spend_by_agent_figure(summary)
    assert list(spend.data[0].y) == ["agent-1", "agent-0"] and spend.data[0].orientation == "h"
    latency = view.latency_figure(summary)
    assert [b.name for b in latency.data] == ["p50", "p95"] and list(latency.data[1].x) == [202, 200]
    assert list(latency.data[0].y) == ["agent-1", "agent-0"] and latency.data[0].orientation == "h"
    assert latency.layout.legend.y >= 1  # above the plot: never over the agent names
    many = view.latency_figure(_summary(agents_count=view.MAX_AGENTS))
    assert many.layout.height >= 28 * view.MAX_AGENTS  # a row per agent
    success = view.success_figure(summary)
    assert list(success.data[0].y) == [75.0, 75.0] and list(success.data[0].text) == ["75.0%", "75.0%"]
    tokens = view.tokens_by_day_figure(summary)
    assert [list(b.y) for b in tokens.data] == [[10, 20, 30], [0, 1, 2]]


def test_figures_for_a_year_of_many_models_stay_small() -> None:
    summary = _summary(days=366, models=20, agents_count=40)
    figures = [
        view.spend_by_day_figure(summary),
        view.tokens_by_day_figure(summary),
        view.spend_by_agent_figure(summary),
        view.latency_figure(summary),
        view.success_figure(summary),
    ]
    size = sum(len(json_dumps(f)) for f in figures)
    assert size < PAGE_STATE_LIMIT * 0.9, size
    assert len(figures[2].data[0].y) == view.MAX_AGENTS
    # No built-in template in the state: rx.plotly adds the light or dark one in the browser.
    assert len(json.dumps(json.loads(json_dumps(figures[0]))["layout"].get("template", {}))) < 100


def test_span_items_indent_and_place_bars_on_the_timeline() -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    run = reports.RunRow(uuid.uuid4(), "helper", "succeeded", "m", 1, 1, 7, 400, start)

    def span(depth: int, offset: int, duration: int | None, **extra: Any) -> reports.TraceSpan:
        fields = {
            "id": uuid.uuid4(),
            "parent_id": None,
            "depth": depth,
            "kind": "llm.call",
            "name": "m",
            "status": "ok",
            "error": None,
            "model": None,
            "started_at": start,
            "offset_ms": offset,
            "duration_ms": duration,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "cost_micros": 0,
        }
        return reports.TraceSpan(**(fields | extra))

    spans = [
        span(0, 0, 400, kind="run", name="helper", cost_micros=7),
        span(1, 100, 200, model="openai/m", prompt_tokens=1200, completion_tokens=3, cost_micros=7),  # a fallback
        span(1, 300, 0, kind="tool.call", name="calculator", status="error", error="boom"),
        span(2, 399, None, model="m"),
    ]
    items = view.span_items(reports.TraceView(run, None, 400, spans))
    assert [i.indent for i in items] == ["0rem", "1.25rem", "1.25rem", "2.5rem"]
    assert [(i.offset, i.width) for i in items] == [
        ("0.00%", "100.00%"),
        ("25.00%", "50.00%"),
        ("75.00%", "0.50%"),  # zero-length spans stay visible
        ("99.75%", "0.50%"),
    ]
    assert items[1].detail == "answered by openai/m · 1,200 in · 3 out" and items[1].cost == "$0.000007"
    assert items[3].detail == ""  # asked and answered by the same model: nothing to add
    assert (items[2].error, items[2].duration, items[3].duration) == ("boom", "0 ms", "unfinished")


# ------------------------------------------------------------------ handlers on services


class _Caller:
    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx

    async def __call__(self, state: Any) -> Ctx:
        return self.ctx


async def _ctx(name: str) -> Ctx:
    email = f"ui-{uuid.uuid4().hex[:8]}@example.com"
    result = await tenancy.signup(email, "correct-horse-battery", name, client_ip="127.0.0.1")
    return await tenancy.authenticate(result.token, result.tenant_id)


@pytest.fixture
async def tenants(backend: str) -> AsyncIterator[tuple[Ctx, Ctx]]:
    yield await _ctx("Acme"), await _ctx("Globex")


@pytest.fixture
def caller(tenants: tuple[Ctx, Ctx], monkeypatch: pytest.MonkeyPatch) -> _Caller:
    who = _Caller(tenants[0])
    monkeypatch.setattr(view, "current_ctx", who)
    return who


async def drive(result: Any) -> None:
    if hasattr(result, "__aiter__"):
        async for _ in result:
            pass
    elif hasattr(result, "__await__"):
        await result


def _size(state: AnalyticsState) -> int:
    return len(json_dumps(state.dict()).encode())


async def _offline_runs(ctx: Ctx) -> list:
    bot = await agents.create_agent(
        ctx, agents.AgentInput(slug="calc", name="Calc", tools=["calculator"], system_prompt="Compute.")
    )
    plain = await agents.create_agent(ctx, agents.AgentInput(slug="plain", name="Plain", system_prompt="Talk."))
    return [
        (await runtime.run_agent(ctx, bot.id, "What is 6 * 7?")).run,
        (await runtime.run_agent(ctx, bot.id, "What is 2 + 2?")).run,
        (await runtime.run_agent(ctx, plain.id, "hello")).run,
    ]


async def test_page_numbers_equal_the_api_and_the_trace_opens(caller: _Caller, tenants) -> None:
    runs = await _offline_runs(caller.ctx)
    state = AnalyticsState(_reflex_internal_init=True)
    await drive(state.load())
    assert state.loaded and state.has_runs and not state.has_spend and state.has_tokens and state.error == ""
    assert state.preset == 30 and state.to_text == reports.today().isoformat()

    # The API's answer for the same range, formatted with the page's rules.
    from atom_core.interfaces.api.routers.analytics import summary_out

    api = summary_out(await reports.summary(caller.ctx, *_api_range(state)))
    t = api["totals"]
    shown = {k.key: k.value for k in state.kpis}
    assert shown == {
        "spend": view.usd(round(t["spend_usd"] * 1_000_000)),
        "runs": view.count(t["runs"]),
        "success-rate": view.rate(t["success_rate"]),
        "tokens": view.count(t["prompt_tokens"] + t["completion_tokens"]),
        "latency-p50": view.millis(t["latency_p50_ms"]),
        "latency-p95": view.millis(t["latency_p95_ms"]),
    }
    assert shown["runs"] == "3" and shown["success-rate"] == "100.0%" and shown["spend"] == "$0.000000"
    assert [r.id for r in state.runs] == [str(r.id) for r in reversed(runs)]
    assert [r.id for r in state.runs] == [r["run_id"] for r in api["recent_runs"]]
    assert _size(state) < PAGE_STATE_LIMIT

    await drive(state.open_trace(state.runs[-1].id))
    assert state.trace_open and not state.trace_loading and state.trace_error == ""
    assert state.trace_title == "Trace of calc"
    assert [(s.kind, s.indent) for s in state.trace_spans] == [
        ("run", "0rem"),
        ("llm.call", "1.25rem"),
        ("tool.call", "1.25rem"),
        ("llm.call", "1.25rem"),
    ]
    state.set_trace_open(False)
    assert not state.trace_open and state.trace_spans == []

    # Another tenant's run id is not found, and says so plainly.
    other = tenants[1]
    theirs = (await _offline_runs(other))[0]
    await drive(state.open_trace(str(theirs.id)))
    assert state.trace_error == "Run not found" and state.trace_spans == []


def _api_range(state: AnalyticsState) -> tuple[str, str]:
    until = date.fromisoformat(state.to_text) + timedelta(days=1)
    return state.from_text, until.isoformat()


async def test_range_errors_show_under_the_field_and_presets_reload(caller: _Caller) -> None:
    state = AnalyticsState(_reflex_internal_init=True)
    await drive(state.load())
    assert not state.has_runs and state.kpis[1].value == "0"

    state.set_to("2020-01-01")
    assert state.preset == 0
    await drive(state.apply_range())
    assert state.field_errors == {"until": "The end date must be on or after the start date"}
    state.set_to(state.from_text)
    assert state.field_errors == {}

    state.set_from("2023-01-01")
    state.set_to("2024-12-31")
    await drive(state.apply_range())
    assert set(state.field_errors) == {"until"} and "366 days" in state.field_errors["until"]

    await drive(state.apply_preset(7))
    today = reports.today()
    assert (state.from_text, state.to_text, state.preset) == (
        (today - timedelta(days=6)).isoformat(),
        today.isoformat(),
        7,
    )
    assert state.field_errors == {} and state.shown_range.endswith("7 days")


async def test_a_role_without_access_sees_the_refusal(caller: _Caller) -> None:
    caller.ctx = dataclasses.replace(caller.ctx, role="nobody")
    state = AnalyticsState(_reflex_internal_init=True)
    await drive(state.load())
    assert state.error.startswith("Your role 'nobody' cannot") and not state.loaded


def test_the_api_module_converts_micros_to_dollars_exactly() -> None:
    from atom_core.interfaces.api.routers.analytics import usd

    assert usd(525) == 0.000525 and view.usd(round(usd(1_234_567_891) * 1_000_000)) == "$1,234.567891"


async def test_another_workspace_never_sees_the_previous_ones_figures(caller: _Caller, tenants) -> None:
    await _offline_runs(caller.ctx)
    state = AnalyticsState(_reflex_internal_init=True)
    await drive(state.load())
    await drive(state.apply_preset(7))
    assert state.has_runs and state.shown_tenant == str(caller.ctx.tenant_id)

    caller.ctx = tenants[1]  # the tenant switcher, or another user signing in in this tab
    await drive(state.tenant_changed())
    assert state.shown_tenant == str(tenants[1].tenant_id) and not state.has_runs
    assert state.runs == [] and state.kpis[1].value == "0"
    assert state.preset == 7, "the chosen range is kept"

    caller.ctx = tenants[0]
    await drive(state.load())
    assert state.has_runs and state.kpis[1].value == "3"
    await drive(state.tenant_changed())  # same workspace: nothing to do
    assert state.kpis[1].value == "3"
