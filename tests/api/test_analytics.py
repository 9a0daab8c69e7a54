"""Analytics over agent runs (REST and service), on both backends: exact spend
per day, model and agent (price x usage), tokens, success rate, latency
percentiles, date-range validation, the trace view, and two tenants."""

from __future__ import annotations

import random
import uuid
from datetime import date, datetime, timedelta

import httpx
import pytest

from atom_core.agents.runs import AgentRun
from atom_core.analytics import reports
from atom_core.db import session_scope
from atom_core.errors import Invalid, NotFound
from atom_core.llm import pricing, providers
from atom_core.tenancy import service as tenancy
from tests.llm_stub import Fail, LLMStub, Reply, ToolCall

pytestmark = pytest.mark.usefixtures("loopback_allowed")  # the LLM stub listens on 127.0.0.1
STUB = "openai/stub-model"
OTHER = "openai/other-model"
SUMMARY = "/api/v1/analytics/summary"


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATOM_LLM_RETRY_BASE_S", "0.01")
    monkeypatch.setenv("ATOM_LLM_RETRY_MAX_S", "0.05")


async def make_agent(client: httpx.AsyncClient, account, slug: str, **fields) -> dict:
    body = {"slug": slug, "name": slug.title(), "system_prompt": "You help."} | fields
    response = await client.post("/api/v1/agents", json=body, headers=account.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def run(client: httpx.AsyncClient, account, agent: dict, text: str = "hi") -> dict:
    response = await client.post(f"/api/v1/agents/{agent['id']}/runs", json={"input": text}, headers=account.headers)
    assert response.status_code == 200, response.text
    summary = response.json()
    detail = (await client.get(f"/api/v1/agent-runs/{summary['run_id']}", headers=account.headers)).json()
    return summary | {"day": datetime.fromisoformat(detail["created_at"]).date().isoformat()}


async def priced_tenant(client: httpx.AsyncClient, account, stub: LLMStub):
    ctx = await tenancy.authenticate(account.token)
    await providers.set_provider(ctx, "openai", api_key="sk-test-0123456789abcdef", api_base=stub.base_url)
    await pricing.set_price(ctx, STUB, "0.15", "0.60")
    await pricing.set_price(ctx, OTHER, "1", "2.5")
    return ctx


def micros(prompt: int, completion: int, input_price: str, output_price: str) -> int:
    """The expected cost, computed independently of the gateway (Decimal, half up)."""
    price = pricing.Price(pricing.Decimal(input_price), pricing.Decimal(output_price), "tenant")
    return pricing.cost_micros(price, prompt, completion)


def usd(value: int) -> float:
    return value / 1_000_000


async def summary(client: httpx.AsyncClient, account, **params) -> dict:
    response = await client.get(SUMMARY, params=params, headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_spend_per_day_model_and_agent_is_price_times_usage(client, make_account, llm_stub: LLMStub) -> None:
    owner = await make_account()
    await priced_tenant(client, owner, llm_stub)
    helper = await make_agent(client, owner, "helper", model=STUB)
    writer = await make_agent(client, owner, "writer", model=OTHER)
    offline = await make_agent(client, owner, "offline-bot", tools=["calculator"])
    llm_stub.script("stub-model", Reply("a", prompt_tokens=1234, completion_tokens=567))
    llm_stub.script("stub-model", Reply("b", prompt_tokens=1000, completion_tokens=3))
    llm_stub.script("other-model", Reply("c", prompt_tokens=777, completion_tokens=333))
    runs = [await run(client, owner, helper), await run(client, owner, helper), await run(client, owner, writer)]
    free = await run(client, owner, offline, "What is 6 * 7?")
    assert all(r["status"] == "succeeded" for r in [*runs, free])

    cost = [micros(1234, 567, "0.15", "0.60"), micros(1000, 3, "0.15", "0.60"), micros(777, 333, "1", "2.5")]
    assert cost == [525, 152, 1610]  # 185.1+340.2, 150+1.8, 777+832.5 (half up)
    body = await summary(client, owner)

    expected_by_day: dict[str, dict[str, float]] = {}
    for r, model, c in zip(runs, (STUB, STUB, OTHER), cost, strict=True):
        per_model = expected_by_day.setdefault(r["day"], {})
        per_model[model] = per_model.get(model, 0) + c
    expected_by_day.setdefault(free["day"], {}).setdefault("atom/offline", 0)
    got_by_day = {d["day"]: d["spend_by_model_usd"] for d in body["days"] if d["spend_by_model_usd"]}
    assert got_by_day == {day: {m: usd(v) for m, v in models.items()} for day, models in expected_by_day.items()}
    assert sum(d["spend_usd"] for d in body["days"]) == pytest.approx(usd(sum(cost)), abs=0)

    totals = body["totals"]
    assert totals["spend_usd"] == usd(sum(cost)) == usd(2287)
    assert (totals["runs"], totals["succeeded"], totals["finished"], totals["success_rate"]) == (4, 4, 4, 1.0)
    free_prompt, free_completion = free["usage"]["prompt_tokens"], free["usage"]["completion_tokens"]
    assert totals["prompt_tokens"] == 1234 + 1000 + 777 + free_prompt
    assert totals["completion_tokens"] == 567 + 3 + 333 + free_completion
    assert sum(d["prompt_tokens"] for d in body["days"]) == totals["prompt_tokens"]
    assert sum(d["runs"] for d in body["days"]) == 4

    agents = {a["agent_slug"]: a for a in body["agents"]}
    assert [a["agent_slug"] for a in body["agents"]] == ["writer", "helper", "offline-bot"]  # by spend
    assert agents["helper"]["spend_usd"] == usd(525 + 152)
    assert agents["writer"]["spend_usd"] == usd(1610)
    assert agents["offline-bot"]["spend_usd"] == 0 and agents["offline-bot"]["llm_calls"] == 2  # tool, then answer
    assert (agents["helper"]["runs"], agents["helper"]["prompt_tokens"]) == (2, 2234)

    models = {m["model"]: m for m in body["models"]}
    assert models[STUB]["spend_usd"] == usd(677) and models[STUB]["calls"] == 2
    assert models[OTHER]["spend_usd"] == usd(1610)
    assert models["atom/offline"]["label"] == "offline model (no provider)"
    assert [r["run_id"] for r in body["recent_runs"]] == [free["run_id"], *(r["run_id"] for r in reversed(runs))]
    assert body["recent_runs"][1]["cost_usd"] == usd(1610)
    assert body["workflow_runs"]["runs"] == 0


async def test_failed_calls_count_and_success_rate_and_latency(client, make_account, llm_stub: LLMStub) -> None:
    owner = await make_account()
    await priced_tenant(client, owner, llm_stub)
    helper = await make_agent(client, owner, "helper", model=STUB, tools=["calculator"])
    llm_stub.script("stub-model", Reply("ok", prompt_tokens=100, completion_tokens=10))
    llm_stub.script(
        "stub-model",
        Reply(tool_calls=[ToolCall("calculator", {"expression": "1+1"})], prompt_tokens=2000, completion_tokens=50),
        Fail(400),  # the second call of this run fails: the run fails, the first call was still paid
    )
    ok = await run(client, owner, helper)
    failed = await run(client, owner, helper)
    assert (ok["status"], failed["status"]) == ("succeeded", "failed")
    first_call = micros(2000, 50, "0.15", "0.60")
    assert failed["cost_usd"] == usd(first_call)  # a failed run's own figure counts the calls it paid for

    body = await summary(client, owner)
    assert body["totals"]["spend_usd"] == usd(micros(100, 10, "0.15", "0.60") + first_call)
    (agent,) = body["agents"]
    assert (agent["runs"], agent["succeeded"], agent["failed"], agent["success_rate"]) == (2, 1, 1, 0.5)
    assert agent["llm_calls"] == 3
    assert agent["latency_p50_ms"] == min(ok["latency_ms"], failed["latency_ms"])
    assert agent["latency_p95_ms"] == max(ok["latency_ms"], failed["latency_ms"])
    assert body["totals"]["latency_p95_ms"] == agent["latency_p95_ms"]


async def test_another_tenant_sees_none_of_it(client, make_account, llm_stub: LLMStub) -> None:
    a = await make_account("Tenant A")
    b = await make_account("Tenant B")
    await priced_tenant(client, a, llm_stub)
    helper = await make_agent(client, a, "helper", model=STUB)
    llm_stub.script("stub-model", Reply("paid", prompt_tokens=5000, completion_tokens=5000))
    done = await run(client, a, helper)
    assert (await summary(client, a))["totals"]["spend_usd"] > 0

    seen_by_b = await summary(client, b)
    assert seen_by_b["totals"] | {"success_rate": None} == {
        "runs": 0,
        "finished": 0,
        "succeeded": 0,
        "failed": 0,
        "cancelled": 0,
        "success_rate": None,
        "spend_usd": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "llm_calls": 0,
        "latency_p50_ms": None,
        "latency_p95_ms": None,
    }
    assert seen_by_b["agents"] == seen_by_b["models"] == seen_by_b["recent_runs"] == []
    assert all(d["spend_usd"] == 0 and d["runs"] == 0 for d in seen_by_b["days"])
    ctx_b = await tenancy.authenticate(b.token)
    with pytest.raises(NotFound):
        await reports.trace(ctx_b, done["run_id"])


async def test_date_range_bounds_and_defaults(client, make_account) -> None:
    owner = await make_account()
    bot = await make_agent(client, owner, "bot")
    done = await run(client, owner, bot)
    day = date.fromisoformat(done["day"])

    default = await summary(client, owner)
    assert date.fromisoformat(default["until"]) - date.fromisoformat(default["since"]) == timedelta(days=30)
    last = date.fromisoformat(default["until"]) - timedelta(days=1)
    assert len(default["days"]) == 30 and default["days"][-1]["day"] == last.isoformat()
    assert default["days"][0]["day"] == default["since"]
    assert default["totals"]["runs"] == 1

    only_that_day = await summary(client, owner, since=day.isoformat(), until=(day + timedelta(days=1)).isoformat())
    assert [d["day"] for d in only_that_day["days"]] == [day.isoformat()]
    assert only_that_day["totals"]["runs"] == 1
    before = await summary(client, owner, since=(day - timedelta(days=3)).isoformat(), until=day.isoformat())
    assert before["totals"]["runs"] == 0 and len(before["days"]) == 3  # until is excluded
    empty = await summary(client, owner, since=day.isoformat(), until=day.isoformat())
    assert empty["days"] == [] and empty["totals"]["runs"] == 0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "2025-13-01"}, "since"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2025-02-30"}, "until"),
        ({"until": "2025-01-01T00:00:00"}, "until"),
        ({"since": "2025-03-02", "until": "2025-03-01"}, "since"),
        ({"since": "2024-01-01", "until": "2025-01-02"}, "until"),  # 367 days
    ],
)
async def test_bad_dates_are_422_naming_the_field(client, make_account, params: dict, field: str) -> None:
    owner = await make_account()
    response = await client.get(SUMMARY, params=params, headers=owner.headers)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("invalid", field)
    assert field in error["message"] or "range" in error["message"]


async def test_a_full_year_is_accepted_and_auth_is_required(client, make_account) -> None:
    owner = await make_account()
    year = await summary(client, owner, since="2024-01-01", until="2025-01-01")  # 366 days (leap year)
    assert len(year["days"]) == 366
    assert (await client.get(SUMMARY)).status_code == 401


async def test_trace_view_is_the_span_tree_with_offsets_and_cost(client, make_account, llm_stub: LLMStub) -> None:
    owner = await make_account()
    ctx = await priced_tenant(client, owner, llm_stub)
    helper = await make_agent(client, owner, "helper", model=STUB, tools=["calculator"])
    llm_stub.script(
        "stub-model",
        Reply(tool_calls=[ToolCall("calculator", {"expression": "6*7"})], prompt_tokens=300, completion_tokens=20),
        Reply("42", prompt_tokens=400, completion_tokens=5, latency=0.05),
    )
    done = await run(client, owner, helper)
    view = await reports.trace(ctx, done["run_id"])
    assert [(s.depth, s.kind) for s in view.spans] == [(0, "run"), (1, "llm.call"), (1, "tool.call"), (1, "llm.call")]
    root, first, tool, second = view.spans
    assert root.cost_micros == first.cost_micros + second.cost_micros == done["cost_usd"] * 1_000_000
    assert first.cost_micros == micros(300, 20, "0.15", "0.60") and first.model == STUB
    assert tool.name == "calculator" and tool.model is None and tool.cost_micros == 0
    assert root.offset_ms == 0 and first.offset_ms <= tool.offset_ms <= second.offset_ms
    assert second.duration_ms >= 50 and view.total_ms >= second.offset_ms + second.duration_ms - 1
    assert view.run.agent_slug == "helper" and view.run.status == "succeeded"
    # The REST trace (span_tree) and this view agree on every span.
    detail = (await client.get(f"/api/v1/agent-runs/{done['run_id']}", headers=owner.headers)).json()
    rest = [detail["spans"][0], *detail["spans"][0]["children"]]
    assert [(s["id"], s["duration_ms"], s["cost_usd"]) for s in rest] == [
        (str(s.id), s.duration_ms, s.cost_micros / 1_000_000) for s in view.spans
    ]
    with pytest.raises(Invalid) as bad:
        await reports.trace(ctx, "not-a-uuid")
    assert bad.value.field == "run_id"
    with pytest.raises(NotFound):
        await reports.trace(ctx, uuid.uuid4())


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert (reports.percentile(values, 50), reports.percentile(values, 95)) == (50, 95)
    assert reports.percentile([7], 95) == 7 and reports.percentile([], 50) is None
    assert (reports.percentile([10, 20, 30, 40], 50), reports.percentile([10, 20, 30, 40], 95)) == (20, 40)


async def test_sql_percentiles_match_nearest_rank_over_every_finished_run(client, make_account) -> None:
    """Percentiles are ranked in SQL; they equal the Python nearest rank on both backends."""
    owner = await make_account()
    ctx = await tenancy.authenticate(owner.token)
    rng = random.Random(5)
    latencies: dict[str, list[int]] = {"alpha": [rng.randint(1, 9000) for _ in range(37)], "beta": [7, 7, 3, 12, 5]}
    rows = [
        AgentRun(
            tenant_id=ctx.tenant_id,
            agent_slug=slug,
            session_id="s",
            input="q",
            status=rng.choice(["succeeded", "failed", "cancelled"]),
            latency_ms=value,
        )
        for slug, values in latencies.items()
        for value in values
    ]
    rows.append(AgentRun(tenant_id=ctx.tenant_id, agent_slug="alpha", session_id="s", input="q", latency_ms=1))
    async with session_scope(ctx) as session:
        session.add_all(rows)  # the last one is still running: not in the percentiles

    result = await reports.summary(ctx)
    everyone = sorted(v for values in latencies.values() for v in values)
    assert (result.totals.latency_p50_ms, result.totals.latency_p95_ms) == (
        reports.percentile(everyone, 50),
        reports.percentile(everyone, 95),
    )
    for usage in result.agents:
        values = sorted(latencies[usage.agent_slug])
        expected = (reports.percentile(values, 50), reports.percentile(values, 95))
        assert (usage.latency_p50_ms, usage.latency_p95_ms) == expected, usage.agent_slug
    beta = next(a for a in result.agents if a.agent_slug == "beta")
    assert (beta.latency_p50_ms, beta.latency_p95_ms) == (7, 12)
    assert result.totals.runs == 43 and result.totals.finished == 42
