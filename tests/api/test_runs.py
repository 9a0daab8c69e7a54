"""Agent runs end to end: REST (JSON and SSE), the reasoning loop with tools,
retries, timeouts, exact cost, traces, sessions, and two tenants. Model calls
go to a real OpenAI-compatible server on loopback (tests/llm_stub.py) or to
the offline model."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

import httpx
import pytest

from atom_core.agents import runtime
from atom_core.llm import pricing, providers
from atom_core.tenancy import service as tenancy
from tests.llm_stub import Fail, LLMStub, Reply, ToolCall

pytestmark = pytest.mark.usefixtures("loopback_allowed")  # the LLM stub listens on 127.0.0.1
STUB_MODEL = "openai/stub-model"
SECRET = "sk-test-secret-0123456789abcdef"


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATOM_LLM_RETRY_BASE_S", "0.01")
    monkeypatch.setenv("ATOM_LLM_RETRY_MAX_S", "0.05")


async def agent(client: httpx.AsyncClient, account, **fields) -> dict:
    body = {"slug": "helper", "name": "Helper", "system_prompt": "You are a careful helper."} | fields
    response = await client.post("/api/v1/agents", json=body, headers=account.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def use_stub(account, stub: LLMStub) -> None:
    ctx = await tenancy.authenticate(account.token)
    await providers.set_provider(ctx, "openai", api_key=SECRET, api_base=stub.base_url)


async def start(client: httpx.AsyncClient, account, agent_id: str, text: str, **extra) -> dict:
    response = await client.post(
        f"/api/v1/agents/{agent_id}/runs", json={"input": text} | extra, headers=account.headers
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_offline_agent_uses_the_calculator(client: httpx.AsyncClient, make_account) -> None:
    owner = await make_account()
    helper = await agent(client, owner, tools=["calculator"])
    run = await start(client, owner, helper["id"], "What is 12 * (3 + 4)?")
    assert run["status"] == "succeeded", run
    assert "84" in run["output"] and "[offline model]" in run["output"]
    assert [c["name"] for c in run["tool_calls"]] == ["calculator"] and run["tool_calls"][0]["ok"]
    assert run["cost_usd"] == 0 and run["usage"]["prompt_tokens"] > 0

    detail = (await client.get(f"/api/v1/agent-runs/{run['run_id']}", headers=owner.headers)).json()
    (root,) = detail["spans"]
    assert root["kind"] == "run"
    assert [s["kind"] for s in root["children"]] == ["llm.call", "tool.call", "llm.call"]
    assert sum(s["prompt_tokens"] for s in root["children"]) == run["usage"]["prompt_tokens"]


async def test_two_tool_loop_against_a_real_http_model(client, make_account, llm_stub: LLMStub) -> None:
    owner = await make_account()
    await use_stub(owner, llm_stub)
    helper = await agent(client, owner, model=STUB_MODEL, tools=["calculator", "datetime_now"])
    llm_stub.script(
        "stub-model",
        Reply(tool_calls=[ToolCall("calculator", {"expression": "6*7"}), ToolCall("datetime_now", {})]),
        Reply("It is 42 and I know the time."),
    )
    run = await start(client, owner, helper["id"], "compute and tell the time")
    assert run["status"] == "succeeded" and run["output"] == "It is 42 and I know the time."
    assert [(c["name"], c["ok"]) for c in run["tool_calls"]] == [("calculator", True), ("datetime_now", True)]
    second = llm_stub.calls("stub-model")[1].body
    tool_messages = [m for m in second["messages"] if m["role"] == "tool"]
    assert json.loads(tool_messages[0]["content"])["result"] == 42
    assert {t["function"]["name"] for t in second["tools"]} == {"calculator", "datetime_now"}
    assert llm_stub.calls("stub-model")[0].headers["authorization"] == f"Bearer {SECRET}"


async def test_streaming_run_sends_events_in_order(client, make_account, llm_stub: LLMStub) -> None:
    owner = await make_account()
    await use_stub(owner, llm_stub)
    helper = await agent(client, owner, model=STUB_MODEL)
    llm_stub.script("stub-model", Reply("Hello streaming world", prompt_tokens=10, completion_tokens=3))
    events = []
    async with client.stream(
        "POST", f"/api/v1/agents/{helper['id']}/runs", json={"input": "hi", "stream": True}, headers=owner.headers
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = json.loads(line.removeprefix("data: "))
                assert data["type"] == name
                events.append(data)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "run.started" and kinds[-1] == "run.finished" and "token" in kinds
    assert "".join(e["text"] for e in events if e["type"] == "token") == "Hello streaming world"
    assert events[-1]["usage"] == {"prompt_tokens": 10, "completion_tokens": 3}


async def test_retryable_failures_are_retried_with_backoff(client, make_account, llm_stub: LLMStub) -> None:
    owner = await make_account()
    await use_stub(owner, llm_stub)
    helper = await agent(client, owner, model=STUB_MODEL)
    llm_stub.script("stub-model", Fail(429), Fail(500), Reply("finally"))
    run = await start(client, owner, helper["id"], "hi")
    assert run["status"] == "succeeded" and run["output"] == "finally"
    assert len(llm_stub.calls("stub-model")) == 3
    detail = (await client.get(f"/api/v1/agent-runs/{run['run_id']}", headers=owner.headers)).json()
    llm_span = detail["spans"][0]["children"][0]
    assert llm_span["attributes"]["attempts"] == 3
    assert len(llm_span["attributes"]["retry_delays_s"]) == 2


async def test_the_agents_fallback_answers_when_its_model_fails(client, make_account, llm_stub: LLMStub) -> None:
    owner = await make_account()
    await use_stub(owner, llm_stub)
    helper = await agent(client, owner, model=STUB_MODEL, fallbacks=["openai/backup-model"])
    llm_stub.script("stub-model", Fail(503), Fail(503), Fail(503))  # the first try and both retries
    llm_stub.script("backup-model", Reply("the backup answers"))
    run = await start(client, owner, helper["id"], "hi")
    assert (run["status"], run["output"], run["model"]) == ("succeeded", "the backup answers", "openai/backup-model")
    assert [r.model for r in llm_stub.calls()] == ["stub-model"] * 3 + ["backup-model"]
    detail = (await client.get(f"/api/v1/agent-runs/{run['run_id']}", headers=owner.headers)).json()
    assert detail["model"] == "openai/backup-model"
    (llm_span,) = detail["spans"][0]["children"]
    assert llm_span["attributes"]["model"] == "openai/backup-model" and llm_span["attributes"]["attempts"] == 4


async def test_bad_request_is_not_retried(client, make_account, llm_stub: LLMStub) -> None:
    owner = await make_account()
    await use_stub(owner, llm_stub)
    helper = await agent(client, owner, model=STUB_MODEL)
    llm_stub.script("stub-model", Fail(400), Reply("never reached"))
    run = await start(client, owner, helper["id"], "hi")
    assert run["status"] == "failed" and "BadRequest" in run["error"]
    assert len(llm_stub.calls("stub-model")) == 1


async def test_timeout_fails_the_run(client, make_account, llm_stub: LLMStub, monkeypatch) -> None:
    monkeypatch.setenv("ATOM_LLM_TIMEOUT_S", "0.3")
    monkeypatch.setenv("ATOM_LLM_MAX_RETRIES", "0")
    from atom_core.settings import reset_settings

    reset_settings()
    owner = await make_account()
    await use_stub(owner, llm_stub)
    helper = await agent(client, owner, model=STUB_MODEL)
    llm_stub.script("stub-model", Reply("too late", latency=2.0))
    run = await start(client, owner, helper["id"], "hi")
    assert run["status"] == "failed"
    assert "time" in run["error"].lower()


async def test_cost_is_price_times_usage_exactly(client, make_account, llm_stub: LLMStub) -> None:
    owner = await make_account()
    await use_stub(owner, llm_stub)
    ctx = await tenancy.authenticate(owner.token)
    await pricing.set_price(ctx, STUB_MODEL, "0.15", "0.60")
    helper = await agent(client, owner, model=STUB_MODEL)
    llm_stub.script("stub-model", Reply("priced", prompt_tokens=1234, completion_tokens=567))
    run = await start(client, owner, helper["id"], "hi")
    # 1234 * 0.15 + 567 * 0.60 = 185.1 + 340.2 = 525.3 micro-dollars -> 525
    assert run["cost_usd"] == 525 / 1_000_000
    # A new price applies to the next call at once (the gateway's settings cache is cleared).
    await pricing.set_price(ctx, STUB_MODEL, "1", "2")
    llm_stub.script("stub-model", Reply("repriced", prompt_tokens=1000, completion_tokens=1000))
    again = await start(client, owner, helper["id"], "hi")
    assert again["cost_usd"] == 3000 / 1_000_000


async def test_max_iterations_stops_the_loop(client, make_account, llm_stub: LLMStub, monkeypatch) -> None:
    monkeypatch.setenv("ATOM_AGENT_MAX_ITERATIONS", "2")
    from atom_core.settings import reset_settings

    reset_settings()
    owner = await make_account()
    await use_stub(owner, llm_stub)
    helper = await agent(client, owner, model=STUB_MODEL, tools=["calculator"])
    for _ in range(3):
        llm_stub.script("stub-model", Reply(tool_calls=[ToolCall("calculator", {"expression": "1+1"})]))
    run = await start(client, owner, helper["id"], "loop forever")
    assert run["status"] == "failed" and "stopped after 2" in run["error"]
    assert len(llm_stub.calls("stub-model")) == 2


async def test_tool_not_allowed_is_refused_at_execution(client, make_account, llm_stub: LLMStub) -> None:
    owner = await make_account()
    await use_stub(owner, llm_stub)
    helper = await agent(client, owner, model=STUB_MODEL, tools=["calculator"])
    llm_stub.script(
        "stub-model", Reply(tool_calls=[ToolCall("http_get", {"url": "http://127.0.0.1/"})]), Reply("understood")
    )
    run = await start(client, owner, helper["id"], "fetch something")
    assert run["status"] == "succeeded"
    (call,) = run["tool_calls"]
    assert call["name"] == "http_get" and call["refused"] is True and not call["ok"]


async def test_sessions_carry_history(client, make_account, llm_stub: LLMStub) -> None:
    owner = await make_account()
    await use_stub(owner, llm_stub)
    helper = await agent(client, owner, model=STUB_MODEL)
    llm_stub.script("stub-model", Reply("first answer"), Reply("second answer"))
    first = await start(client, owner, helper["id"], "first question", session_id="s-1")
    await start(client, owner, helper["id"], "second question", session_id=first["session_id"])
    sent = [(m["role"], m["content"]) for m in llm_stub.calls("stub-model")[1].body["messages"]]
    assert sent[1:] == [
        ("user", "first question"),
        ("assistant", "first answer"),
        ("user", "second question"),
    ]


async def test_runs_and_traces_stay_in_their_tenant(client, make_account) -> None:
    a, b = await make_account("A"), await make_account("B")
    helper = await agent(client, a)
    run = await start(client, a, helper["id"], "hello")
    assert (await client.get(f"/api/v1/agent-runs/{run['run_id']}", headers=b.headers)).status_code == 404
    response = await client.post(f"/api/v1/agents/{helper['id']}/runs", json={"input": "x"}, headers=b.headers)
    assert response.status_code == 404
    assert (await client.get(f"/api/v1/agent-runs/{run['run_id']}", headers=a.headers)).status_code == 200


async def test_no_secret_in_errors_spans_or_logs(client, make_account, llm_stub: LLMStub, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    owner = await make_account()
    await use_stub(owner, llm_stub)
    helper = await agent(client, owner, model=STUB_MODEL)
    llm_stub.script("stub-model", Fail(401, message=f"Incorrect API key provided: {SECRET}"))
    run = await start(client, owner, helper["id"], "hi")
    assert run["status"] == "failed"
    detail = await client.get(f"/api/v1/agent-runs/{run['run_id']}", headers=owner.headers)
    assert SECRET not in json.dumps(run) and SECRET not in detail.text
    assert SECRET not in caplog.text


async def test_a_tenant_base_url_without_a_key_never_gets_the_operators_key(
    client, make_account, llm_stub: LLMStub, monkeypatch
) -> None:
    sentinel = "sk-operator-sentinel-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", sentinel)
    owner = await make_account()
    await providers.set_provider(await tenancy.authenticate(owner.token), "openai", api_base=llm_stub.base_url)
    helper = await agent(client, owner, model=STUB_MODEL)
    run = await start(client, owner, helper["id"], "hi")
    assert run["status"] == "succeeded"
    (call,) = llm_stub.calls("stub-model")
    assert sentinel not in call.headers["authorization"]


async def test_cancel_endpoint(client, make_account, llm_stub: LLMStub) -> None:
    owner, other, viewer = await make_account("A"), await make_account("B"), await make_account("V")
    await client.post("/api/v1/members", json={"email": viewer.email, "role": "viewer"}, headers=owner.headers)
    await use_stub(owner, llm_stub)
    helper = await agent(client, owner, model=STUB_MODEL)
    llm_stub.set_default("stub-model", Reply("too late"), latency=30)
    ctx = await tenancy.authenticate(owner.token)
    started: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def sink(event: dict) -> None:
        if event["type"] == "run.started":
            started.set_result(event["run_id"])

    task = asyncio.create_task(runtime.run_agent(ctx, uuid.UUID(helper["id"]), "slow", on_event=sink))
    url = f"/api/v1/agent-runs/{await asyncio.wait_for(started, 10)}/cancel"
    assert (await client.post(url, headers=other.headers)).status_code == 404  # another tenant's run
    as_viewer = viewer.headers | {"X-Tenant-ID": owner.tenant_id}
    assert (await client.post(url, headers=as_viewer)).status_code == 403

    accepted = await client.post(url, headers=owner.headers)
    assert accepted.status_code == 202 and accepted.json()["status"] == "cancelling"
    done, _ = await asyncio.wait({task}, timeout=30)  # not wait_for: its timeout would cancel the run itself
    assert done and task.result().run.status == "cancelled"
    again = await client.post(url, headers=owner.headers)
    assert again.status_code == 409 and again.json()["error"]["field"] == "run_id"


async def test_input_is_validated(client, make_account) -> None:
    owner = await make_account()
    helper = await agent(client, owner)
    for body, field in (({"input": ""}, "input"), ({"input": "x", "session_id": "bad id!"}, "session_id")):
        response = await client.post(f"/api/v1/agents/{helper['id']}/runs", json=body, headers=owner.headers)
        assert response.status_code == 422 and response.json()["error"]["field"] == field


async def test_run_timeout_stops_a_run_whose_model_is_slow(
    client, make_account, llm_stub: LLMStub, monkeypatch
) -> None:
    monkeypatch.setenv("ATOM_RUN_TIMEOUT_S", "0.5")
    from atom_core.settings import reset_settings

    reset_settings()
    owner = await make_account()
    await use_stub(owner, llm_stub)
    helper = await agent(client, owner, model=STUB_MODEL)
    llm_stub.script("stub-model", Reply("far too late", latency=5.0))
    run = await start(client, owner, helper["id"], "hi")
    assert run["status"] == "failed" and "longer than 0.5 s" in run["error"]
    detail = (await client.get(f"/api/v1/agent-runs/{run['run_id']}", headers=owner.headers)).json()
    assert detail["status"] == "failed" and detail["spans"][0]["status"] == "error"
