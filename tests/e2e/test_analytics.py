"""The Analytics page in a real browser: runs seeded through the `atom` CLI show
up as KPI figures equal to the REST API's, the charts render (light and dark),
the date range reloads (and says which field is wrong), a run's trace opens;
another tenant sees none of it, and the tenant switcher reloads the figures."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from atom_ui.states.analytics import count, millis, rate, usd

pytestmark = pytest.mark.e2e

PASSWORD = "violet-harbor-1987"
KPIS = ("spend", "runs", "success-rate", "tokens", "latency-p50", "latency-p95")
REPO = Path(__file__).resolve().parents[2]

# Priced runs written as the runtime records them (run, trace, spans): the offline
# model is free, and the built app cannot reach a test model server, so this is
# how the spend charts get something to draw. (days ago, agent, model, cost in micro-dollars)
PRICED = [
    (0, "writer", "openai/gpt-4o-mini", 1_525),
    (0, "writer", "anthropic/claude-3-haiku", 2_750),
    (1, "analyst", "openai/gpt-4o-mini", 12_345),
    (3, "analyst", "openai/gpt-4o-mini", 987_654),
]
SEED = "import asyncio, json, sys; from tests.e2e.test_analytics import seed_priced; " + (
    "asyncio.run(seed_priced(sys.argv[1], json.loads(sys.argv[2])))"
)


async def seed_priced(tenant: str, plan: list) -> None:
    """Run in a subprocess on the app's ATOM_HOME (Playwright holds this process's event loop)."""
    from datetime import UTC, datetime

    from atom_core.agents.runs import AgentRun
    from atom_core.analytics.models import SpanRecord, TraceRecord
    from atom_core.db import dispose_engine, session_scope
    from atom_core.tenancy.service import operator_ctx

    ctx = operator_ctx(uuid.UUID(tenant))
    runs, details = [], []
    for days_ago, slug, model, cost in plan:
        start = datetime.now(UTC) - timedelta(days=days_ago, seconds=5)
        end = start + timedelta(milliseconds=1200)
        usage = {"prompt_tokens": 1000, "completion_tokens": 100, "cost_micros": cost}
        run = AgentRun(
            tenant_id=ctx.tenant_id,
            agent_slug=slug,
            session_id="seed",
            status="succeeded",
            input="hi",
            output="ok",
            model=model,
            latency_ms=1200,
            created_at=start,
            finished_at=end,
            **usage,
        )
        common = {"tenant_id": ctx.tenant_id, "trace_id": run.trace_id, "run_id": run.id, "status": "ok"}
        root = SpanRecord(kind="run", name=slug, started_at=start, ended_at=end, attributes={}, **common, **usage)
        call = SpanRecord(
            kind="llm.call",
            name=model,
            parent_id=root.id,
            started_at=start + timedelta(milliseconds=100),
            ended_at=end,
            attributes={"model": model},
            **common,
            **usage,
        )
        trace = TraceRecord(
            id=run.trace_id,
            tenant_id=ctx.tenant_id,
            run_id=run.id,
            name=slug,
            status="ok",
            started_at=start,
            ended_at=end,
            **usage,
        )
        runs.append(run)
        details += [trace, root, call]
    async with session_scope(ctx) as session:
        session.add_all(runs)
        await session.flush()
        session.add_all(details)
    await dispose_engine()


def _url(path: str) -> re.Pattern[str]:
    return re.compile(rf"{re.escape(path)}/?$")


def sign_up(page: Page, base_url: str, workspace: str) -> str:
    email = f"e2e-{uuid.uuid4().hex[:10]}@example.com"
    page.goto(f"{base_url}/signup")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Workspace name", exact=True).fill(workspace)
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(_url("/marketplace"), timeout=30_000)
    return email


def _session(page: Page) -> tuple[dict[str, str], str]:
    token = page.evaluate("() => window.localStorage.getItem('atom_token')")
    tenant = page.evaluate("() => window.localStorage.getItem('atom_tenant')")
    assert token and tenant, "no session in localStorage"
    return {"Authorization": f"Bearer {token}", "X-Tenant-ID": tenant}, tenant


def api_summary(page: Page, base_url: str, **params: str) -> dict:
    headers, _ = _session(page)
    response = page.request.get(f"{base_url}/api/v1/analytics/summary", headers=headers, params=params)
    assert response.status == 200, response.text()
    return response.json()


def expected_kpis(summary: dict) -> dict[str, str]:
    """The API's totals, formatted by the page's own rules."""
    t = summary["totals"]
    return {
        "spend": usd(round(t["spend_usd"] * 1_000_000)),
        "runs": count(t["runs"]),
        "success-rate": rate(t["success_rate"]),
        "tokens": count(t["prompt_tokens"] + t["completion_tokens"]),
        "latency-p50": millis(t["latency_p50_ms"]),
        "latency-p95": millis(t["latency_p95_ms"]),
    }


def open_analytics(page: Page) -> float:
    """Navigate through the sidebar; seconds until the KPI figures are on screen."""
    started = time.monotonic()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Analytics").click()
    expect(page).to_have_url(_url("/analytics"))
    expect(page.get_by_test_id("kpi-runs")).to_be_visible(timeout=15_000)
    return time.monotonic() - started


def test_runs_show_up_equal_to_the_api_with_charts_and_a_trace(
    page: Page, base_url: str, atom: Callable[..., str], snap
) -> None:
    sign_up(page, base_url, "Analytics Lab")
    _, tenant = _session(page)
    atom("agent", "create", "--tenant", tenant, "calc", "--name", "Calc", "--tools", "calculator")
    atom("agent", "create", "--tenant", tenant, "chat", "--name", "Chat")
    for question in ("What is 6 * 7?", "What is 12 / 4?"):
        atom("agent", "run", "--tenant", tenant, "calc", question)
    atom("agent", "run", "--tenant", tenant, "chat", "Hello there")

    seconds = open_analytics(page)
    print(f"\nanalytics: KPI figures visible {seconds:.2f} s after navigation")
    api = api_summary(page, base_url)
    expected = expected_kpis(api)
    assert expected["runs"] == "3" and expected["spend"] == "$0.000000"  # the offline model is free
    for key in KPIS:
        expect(page.get_by_test_id(f"kpi-{key}")).to_have_text(expected[key])

    # Charts: tokens, latency and success rate are drawn; spend says why it is empty.
    for chart in ("chart-tokens", "chart-latency", "chart-success"):
        expect(page.get_by_test_id(chart).locator(".js-plotly-plot .main-svg").first).to_be_visible(timeout=20_000)
    expect(page.get_by_test_id("chart-spend-by-day")).to_contain_text("every model call was free")
    expect(page.get_by_test_id("recent-run")).to_have_count(3)
    snap("analytics")

    # A run's trace: the span tree with durations and cost.
    page.get_by_role("button", name=re.compile(r"^Open trace of run calc")).first.click()
    dialog = page.get_by_test_id("trace-dialog")
    expect(dialog.get_by_role("heading", name="Trace of calc")).to_be_visible()
    spans = dialog.get_by_test_id("trace-span")
    expect(spans).to_have_count(4)  # run, llm.call, tool.call (calculator), llm.call
    expect(spans.nth(2)).to_contain_text("calculator")
    expect(spans.first.get_by_test_id("span-cost")).to_have_text("$0.000000")
    expect(spans.first.get_by_test_id("span-duration")).to_have_text(re.compile(r"^[\d,]+ ms$"))
    snap("trace")
    page.get_by_role("button", name="Close trace").click()
    expect(dialog).to_be_hidden()
    page.emulate_media(color_scheme="dark")
    expect(page.get_by_test_id("chart-latency").locator(".js-plotly-plot .main-svg").first).to_be_visible()
    snap("analytics-dark")
    page.emulate_media(color_scheme="light")

    # Presets reload; the 7-day figures equal the API's for the same days.
    page.get_by_role("button", name="Last 7 days").click()
    expect(page.get_by_test_id("analytics-range")).to_contain_text("7 days")
    today = date.fromisoformat(api["until"]) - timedelta(days=1)
    week = api_summary(
        page, base_url, since=(today - timedelta(days=6)).isoformat(), until=(today + timedelta(days=1)).isoformat()
    )
    for key, value in expected_kpis(week).items():
        expect(page.get_by_test_id(f"kpi-{key}")).to_have_text(value)

    # A reversed range is refused under the field it concerns.
    page.get_by_label("To", exact=True).fill((today - timedelta(days=10)).isoformat())
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_role("alert").filter(has_text="end date")).to_be_visible()
    snap("range-error")


def test_another_tenant_sees_none_of_it_and_the_switcher_reloads(
    page: Page, base_url: str, atom: Callable[..., str], snap
) -> None:
    email = sign_up(page, base_url, "Quiet Lab")
    busy = json.loads(atom("tenant", "create", "Busy Lab", "--owner-email", email))["tenant_id"]
    atom("agent", "create", "--tenant", busy, "calc", "--name", "Calc", "--tools", "calculator")
    atom("agent", "run", "--tenant", busy, "calc", "What is 2 + 2?")
    page.reload()

    open_analytics(page)
    expect(page.get_by_test_id("kpi-runs")).to_have_text("0")
    expect(page.get_by_text("No runs in this range")).to_be_visible()
    assert api_summary(page, base_url)["totals"]["runs"] == 0
    snap("analytics-empty")

    switcher = page.get_by_role("combobox", name="Switch workspace")
    switcher.click()
    page.get_by_role("option", name="Busy Lab").click()
    expect(page.get_by_test_id("kpi-runs")).to_have_text("1")
    expect(page.get_by_test_id("recent-run")).to_have_count(1)
    switcher.click()
    page.get_by_role("option", name="Quiet Lab").click()
    expect(page.get_by_test_id("kpi-runs")).to_have_text("0")


def test_priced_runs_fill_the_spend_charts_with_the_apis_figures(
    page: Page, base_url: str, atom_home: Path, snap
) -> None:
    sign_up(page, base_url, "Priced Lab")
    _, tenant = _session(page)
    env = {**os.environ, "ATOM_HOME": str(atom_home)}
    seeded = subprocess.run(
        [sys.executable, "-c", SEED, tenant, json.dumps(PRICED)],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert seeded.returncode == 0, seeded.stderr.decode()

    open_analytics(page)
    api = api_summary(page, base_url)
    assert api["totals"]["spend_usd"] == sum(cost for *_, cost in PRICED) / 1_000_000
    for key, value in expected_kpis(api).items():
        expect(page.get_by_test_id(f"kpi-{key}")).to_have_text(value)
    expect(page.get_by_test_id("kpi-spend")).to_have_text("$1.004274")
    spend = page.get_by_test_id("chart-spend-by-day")
    expect(spend.locator(".js-plotly-plot .main-svg").first).to_be_visible(timeout=20_000)
    for model in ("openai/gpt-4o-mini", "anthropic/claude-3-haiku"):  # the legend names each model
        expect(spend.locator(".legend").get_by_text(model)).to_be_visible()
    by_agent = page.get_by_test_id("chart-spend-by-agent")
    expect(by_agent.locator(".js-plotly-plot .main-svg").first).to_be_visible()
    expect(by_agent.get_by_text("analyst")).to_be_visible()
    snap("analytics-spend")

    page.get_by_role("button", name=re.compile(r"^Open trace of run writer")).first.click()
    spans = page.get_by_test_id("trace-dialog").get_by_test_id("trace-span")
    expect(spans).to_have_count(2)
    expect(spans.nth(1).get_by_test_id("span-cost")).to_have_text(re.compile(r"^\$0\.00(1525|2750)$"))


@pytest.mark.parametrize("viewport", [{"width": 390, "height": 844}], ids=["phone"])
def test_narrow_screen_keeps_the_page_usable(page: Page, base_url: str, atom: Callable[..., str], snap) -> None:
    sign_up(page, base_url, "Pocket Lab")
    _, tenant = _session(page)
    atom("agent", "create", "--tenant", tenant, "calc", "--name", "Calc", "--tools", "calculator")
    atom("agent", "run", "--tenant", tenant, "calc", "What is 3 * 3?")
    page.goto(page.url.replace("/marketplace", "/analytics"))
    expect(page.get_by_test_id("kpi-runs")).to_have_text("1", timeout=15_000)
    expect(page.get_by_test_id("chart-tokens").locator(".js-plotly-plot").first).to_be_visible(timeout=20_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1  # no sideways scrolling
    snap("analytics-narrow")
