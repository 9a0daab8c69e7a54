"""The LLM gateway on its own: fallbacks, streaming assembly, the offline
model's rules; and the run cap the runtime relies on (the event bus and
cancellation: tests/core/test_run_events.py)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from atom_core.agents import runtime
from atom_core.agents import service as agents
from atom_core.errors import RateLimited
from atom_core.infra import concurrency
from atom_core.llm import gateway, providers
from atom_core.llm.offline import decide
from atom_core.tenancy import service as tenancy
from tests.conftest import PASSWORD
from tests.llm_stub import Fail, LLMStub, Reply, ToolCall

pytestmark = pytest.mark.usefixtures("loopback_allowed")  # the LLM stub listens on 127.0.0.1


@pytest.fixture
async def ctx(backend: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ATOM_LLM_RETRY_BASE_S", "0.01")
    signup = await tenancy.signup(f"{uuid.uuid4().hex[:8]}@example.com", PASSWORD, "Gateway", client_ip="t")
    return await tenancy.authenticate(signup.token)


async def test_fallback_model_answers_after_primary_exhausts_retries(ctx, llm_stub: LLMStub) -> None:
    await providers.set_provider(ctx, "openai", api_key="sk-x", api_base=llm_stub.base_url)
    llm_stub.script("primary", Fail(503), Fail(503), Fail(503))
    llm_stub.script("backup", Reply("from backup"))
    request = gateway.ChatRequest(
        model="openai/primary", fallbacks=["openai/backup"], messages=[{"role": "user", "content": "hi"}]
    )
    result = await gateway.complete(ctx, request)
    assert (result.content, result.model, result.attempts) == ("from backup", "openai/backup", 4)
    assert [r.model for r in llm_stub.calls()] == ["primary", "primary", "primary", "backup"]


async def test_all_models_failing_raises_a_model_error(ctx, llm_stub: LLMStub) -> None:
    await providers.set_provider(ctx, "openai", api_key="sk-x", api_base=llm_stub.base_url)
    llm_stub.script("only", *[Fail(500)] * 3)
    with pytest.raises(gateway.ModelError) as caught:
        await gateway.complete(
            ctx, gateway.ChatRequest(model="openai/only", messages=[{"role": "user", "content": "x"}])
        )
    assert caught.value.status == 502


async def test_streamed_tool_call_is_reassembled(ctx, llm_stub: LLMStub) -> None:
    await providers.set_provider(ctx, "openai", api_key="sk-x", api_base=llm_stub.base_url)
    llm_stub.script("m", Reply(tool_calls=[ToolCall("calculator", {"expression": "(1 + 2) * 3"})]))
    tokens: list[str] = []

    async def sink(token: str) -> None:
        tokens.append(token)

    request = gateway.ChatRequest(model="openai/m", messages=[{"role": "user", "content": "x"}])
    result = await gateway.complete(ctx, request, on_token=sink)
    (call,) = result.tool_calls
    assert call.name == "calculator" and call.arguments.replace(" ", "") == '{"expression":"(1+2)*3"}'
    assert tokens == [] and result.finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("question", "tools", "expected"),
    [
        ("what is 2 + 2?", {"calculator"}, ("calculator", {"expression": "2 + 2"})),
        ("what is 2 + 2?", set(), None),
        ("what time is it now?", {"datetime_now"}, ("datetime_now", {})),
        ("do you remember my name?", {"memory_search"}, ("memory_search", {"query": "do you remember my name?"})),
        ("write a haiku", {"calculator", "datetime_now"}, None),
    ],
)
def test_offline_model_rules(question: str, tools: set[str], expected) -> None:
    text, call = decide([{"role": "user", "content": question}], tools)
    assert (call["name"], call["arguments"]) == expected if expected else call is None and "[offline model]" in text


async def test_concurrent_run_cap_refuses_the_extra_run(ctx) -> None:
    async with concurrency.slot(ctx.tenant_id, "agent runs", 1):
        with pytest.raises(RateLimited):
            async with concurrency.slot(ctx.tenant_id, "agent runs", 1):
                pass
    async with concurrency.slot(ctx.tenant_id, "agent runs", 1):  # released: usable again
        pass


async def test_a_running_run_can_be_cancelled(ctx, llm_stub: LLMStub) -> None:
    await providers.set_provider(ctx, "openai", api_key="sk-x", api_base=llm_stub.base_url)
    agent = await agents.create_agent(ctx, agents.AgentInput(slug="slow", name="Slow", model="openai/slow"))
    llm_stub.script("slow", Reply("too late", latency=30))
    started: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def sink(event: dict) -> None:
        if event["type"] == "run.started":
            started.set_result(event["run_id"])

    task = asyncio.create_task(runtime.run_agent(ctx, agent.id, "take your time", on_event=sink))
    run_id = uuid.UUID(await asyncio.wait_for(started, 10))
    await asyncio.sleep(0.2)  # let it reach the model call
    assert await runtime.cancel_run(ctx, run_id) is True
    outcome = await asyncio.wait_for(task, 10)
    assert outcome.run.status == "cancelled"
    assert (await runtime.get_run(ctx, run_id)).status == "cancelled"
    assert await runtime.cancel_run(ctx, run_id) is False  # finished: nothing to cancel


async def test_a_tenant_without_a_key_never_spends_the_operators(ctx, llm_stub: LLMStub, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-operator-key-0123456789")
    monkeypatch.setenv("OPENAI_BASE_URL", llm_stub.base_url)
    request = gateway.ChatRequest(model="openai/any", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(gateway.ProviderNotConfigured) as caught:
        await gateway.complete(ctx, request)
    assert caught.value.field == "model" and "Providers" in caught.value.message
    assert llm_stub.calls() == []  # nothing was sent with the operator's key
