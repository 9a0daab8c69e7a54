"""No agent run is left "running" by an error: a failure injected at each stage
(history read, model config, gateway, tool, record) ends the run as `failed`
with a generic message (details only in the server log), its spans closed, its
concurrency slot given back and `run.failed` on the stream and the bus; a
cancelled task records the run, then re-raises. Both modes, plain and SSE."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest

from atom_core.agents import run_events, runtime
from atom_core.infra import events
from atom_core.llm import gateway, providers
from atom_core.settings import reset_settings
from atom_core.tenancy import service as tenancy
from tests.llm_stub import LLMStub, Reply, ToolCall

pytestmark = pytest.mark.usefixtures("loopback_allowed")  # the LLM stub listens on 127.0.0.1
STUB_MODEL = "openai/stub-model"
LEAK = "sk-leaked-0123456789abcdef in the tenant's own words"  # what a raw exception text may hold
GENERIC = "internal error: the run failed"
STAGES = ["history", "model config", "gateway", "tool", "record"]


@dataclass
class Injected:
    armed: bool = True

    def boom(self) -> None:
        if self.armed:
            raise RuntimeError(LEAK)


def inject(stage: str, monkeypatch: pytest.MonkeyPatch) -> Injected:
    """Make `stage` fail (once armed) the way an unexpected fault there would."""
    fault = Injected()

    def failing(target: object, name: str) -> None:
        original = getattr(target, name)

        async def replacement(*args, **kwargs):
            fault.boom()
            return await original(*args, **kwargs)

        monkeypatch.setattr(target, name, replacement)

    if stage == "history":
        failing(runtime, "_history")
    elif stage == "model config":
        failing(providers, "credentials_for")  # the per-tenant model settings lookup
    elif stage == "gateway":
        failing(gateway, "_ask")
    elif stage == "tool":
        failing(runtime, "execute")
    else:  # record: every span twice, so the database itself refuses the record (a primary key violation)
        spans = runtime._span_records
        monkeypatch.setattr(runtime, "_span_records", lambda *a: spans(*a) + (spans(*a) if fault.armed else []))
    return fault


@pytest.fixture
async def setup(client: httpx.AsyncClient, make_account, llm_stub: LLMStub, monkeypatch: pytest.MonkeyPatch):
    """An owner with an agent on the stub model (calculator allowed), at most one run at a time."""
    monkeypatch.setenv("ATOM_MAX_CONCURRENT_RUNS", "1")  # a slot left taken would refuse the next run
    reset_settings()
    owner = await make_account()
    ctx = await tenancy.authenticate(owner.token)
    await providers.set_provider(ctx, "openai", api_key="sk-test-key", api_base=llm_stub.base_url)
    body = {"slug": "helper", "name": "Helper", "model": STUB_MODEL, "tools": ["calculator"]}
    response = await client.post("/api/v1/agents", json=body, headers=owner.headers)
    assert response.status_code == 201, response.text
    llm_stub.set_default("stub-model", Reply("a fine answer"))
    return owner, response.json()


def script_for(stage: str, llm_stub: LLMStub) -> None:
    if stage == "tool":
        llm_stub.script("stub-model", Reply(tool_calls=[ToolCall("calculator", {"expression": "6*7"})]))


def run_body(stage: str, **extra) -> dict:
    # A continued session, so the history is read.
    return {"input": "What is 6 * 7?"} | ({"session_id": "s-1"} if stage == "history" else {}) | extra


@asynccontextmanager
async def bus_events(tenant_id: str) -> AsyncIterator[list[dict]]:
    """Every agent-run event of the tenant on the bus, until a final one."""
    seen: list[dict] = []
    async with events.get_bus().listen_pattern(events.channel(tenant_id, run_events.topic("*"))) as received:

        async def collect() -> None:
            async for _, event in received:
                seen.append(event)
                if event.get("type") in ("run.finished", "run.failed"):
                    return

        task = asyncio.create_task(collect())
        yield seen
        await asyncio.wait_for(task, 10)


async def read_sse(client: httpx.AsyncClient, url: str, body: dict, headers: dict) -> tuple[list[dict], str]:
    events_seen, text = [], ""
    async with client.stream("POST", url, json=body, headers=headers) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            text += line + "\n"
            if line.startswith("data: "):
                events_seen.append(json.loads(line.removeprefix("data: ")))
    return events_seen, text


def all_spans(tree: list[dict]) -> list[dict]:
    return [s for node in tree for s in (node, *all_spans(node["children"]))]


async def assert_ended_cleanly(client: httpx.AsyncClient, owner, run_id: str, stage: str) -> None:
    response = await client.get(f"/api/v1/agent-runs/{run_id}", headers=owner.headers)
    detail = response.json()
    assert detail["status"] == "failed" and detail["finished_at"] is not None
    assert detail["error"].startswith(GENERIC) and LEAK not in response.text
    assert "duplicate" not in detail["error"].lower() and "unique" not in detail["error"].lower()
    if stage != "record":  # a refused record keeps the final status alone, not the spans
        (root,) = detail["spans"]
        assert root["kind"] == "run" and root["status"] == "error" and root["error"].startswith(GENERIC)
        assert all(s["ended_at"] is not None for s in all_spans(detail["spans"])), "a span was left open"


async def a_later_run_succeeds(client: httpx.AsyncClient, owner, agent: dict, fault: Injected) -> None:
    """With the cap at one run, this proves the failed run gave its slot back."""
    fault.armed = False
    later = await client.post(f"/api/v1/agents/{agent['id']}/runs", json={"input": "hi"}, headers=owner.headers)
    assert later.status_code == 200, later.text
    assert later.json()["status"] == "succeeded"


@pytest.mark.parametrize("stage", STAGES)
async def test_a_failure_at_any_stage_fails_the_plain_run_cleanly(
    stage: str, client, setup, llm_stub: LLMStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, agent = setup
    script_for(stage, llm_stub)
    fault = inject(stage, monkeypatch)
    async with bus_events(owner.tenant_id) as on_bus:
        response = await client.post(f"/api/v1/agents/{agent['id']}/runs", json=run_body(stage), headers=owner.headers)
    assert response.status_code == 200, response.text  # a failed run is an answer, as for any failed run
    run = response.json()
    assert run["status"] == "failed" and run["error"].startswith(GENERIC) and LEAK not in response.text
    assert on_bus[-1]["type"] == "run.failed" and on_bus[-1]["run_id"] == run["run_id"]
    assert on_bus[-1]["error"] == run["error"]
    await assert_ended_cleanly(client, owner, run["run_id"], stage)
    await a_later_run_succeeds(client, owner, agent, fault)


@pytest.mark.parametrize("stage", STAGES)
async def test_a_failure_at_any_stage_ends_the_stream_with_run_failed(
    stage: str, client, setup, llm_stub: LLMStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, agent = setup
    script_for(stage, llm_stub)
    fault = inject(stage, monkeypatch)
    url = f"/api/v1/agents/{agent['id']}/runs"
    async with bus_events(owner.tenant_id) as on_bus:
        seen, text = await read_sse(client, url, run_body(stage, stream=True), owner.headers)
    kinds = [e["type"] for e in seen]
    assert kinds[0] == "run.started" and kinds[-1] == "run.failed", kinds
    if stage == "record":
        assert "token" in kinds  # the model had answered: the record failed after
    final = seen[-1]
    assert final["status"] == "failed" and final["error"].startswith(GENERIC) and LEAK not in text
    assert on_bus[-1]["type"] == "run.failed" and on_bus[-1]["run_id"] == final["run_id"]
    await assert_ended_cleanly(client, owner, final["run_id"], stage)
    await a_later_run_succeeds(client, owner, agent, fault)


async def test_a_failure_before_the_run_exists_still_ends_the_stream(
    client, setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, agent = setup
    fault = Injected()
    original = runtime._start

    async def start(*args, **kwargs):
        fault.boom()
        return await original(*args, **kwargs)

    monkeypatch.setattr(runtime, "_start", start)
    url = f"/api/v1/agents/{agent['id']}/runs"
    seen, text = await read_sse(client, url, {"input": "hi", "stream": True}, owner.headers)
    assert [e["type"] for e in seen] == ["run.failed"] and LEAK not in text
    assert seen[0]["code"] == "internal_error" and seen[0]["error"].startswith(GENERIC)

    plain = await client.post(url, json={"input": "hi"}, headers=owner.headers)
    assert plain.status_code == 500 and LEAK not in plain.text
    assert plain.json()["error"]["code"] == "internal_error"
    await a_later_run_succeeds(client, owner, agent, fault)


async def test_a_run_survives_a_bus_that_refuses_every_publish(client, setup, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bus is best effort: the run, its requester and its record do not depend on it."""
    owner, agent = setup

    async def refuse(self, channel: str, event: dict) -> None:
        raise ConnectionError("the bus is down")

    monkeypatch.setattr(type(events.get_bus()), "publish", refuse)
    url = f"/api/v1/agents/{agent['id']}/runs"
    seen, _ = await read_sse(client, url, {"input": "hi", "stream": True}, owner.headers)
    assert [e["type"] for e in seen][-1] == "run.finished" and seen[-1]["output"] == "a fine answer"
    detail = (await client.get(f"/api/v1/agent-runs/{seen[-1]['run_id']}", headers=owner.headers)).json()
    assert detail["status"] == "succeeded"


# --- cancellation -------------------------------------------------------------------------


async def started_run(ctx, agent_id: str, sink: Callable | None = None) -> tuple[uuid.UUID, asyncio.Task]:
    started: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def on_event(event: dict) -> None:
        if event["type"] == "run.started" and not started.done():
            started.set_result(event["run_id"])

    task = asyncio.create_task(runtime.run_agent(ctx, uuid.UUID(agent_id), "take your time", on_event=on_event))
    return uuid.UUID(await asyncio.wait_for(started, 10)), task


async def test_a_cancelled_task_records_the_run_then_re_raises(client, setup, llm_stub: LLMStub) -> None:
    owner, agent = setup
    llm_stub.set_default("stub-model", Reply("too late"), latency=30)
    ctx = await tenancy.authenticate(owner.token)
    async with bus_events(owner.tenant_id) as on_bus:
        run_id, task = await started_run(ctx, agent["id"])
        task.cancel()  # its caller went away (a closed stream, a stopping process): not a cancel request
        done, _ = await asyncio.wait({task}, timeout=30)
    assert done and task.cancelled(), "the cancellation was swallowed"
    run = await runtime.get_run(ctx, run_id)
    assert run.status == "cancelled" and run.error == runtime.CANCELLED and run.finished_at is not None
    assert on_bus[-1]["type"] == "run.failed" and on_bus[-1]["status"] == "cancelled"
    (root,) = [s for s in await runtime.get_spans(ctx, run) if s.parent_id is None]
    assert root.ended_at is not None
    llm_stub.set_default("stub-model", Reply("a fine answer"))
    await a_later_run_succeeds(client, owner, agent, Injected())


async def test_a_cancel_request_ends_the_run_and_its_caller_gets_the_answer(client, setup, llm_stub: LLMStub) -> None:
    owner, agent = setup
    llm_stub.set_default("stub-model", Reply("too late"), latency=30)
    ctx = await tenancy.authenticate(owner.token)
    run_id, task = await started_run(ctx, agent["id"])
    assert await runtime.cancel_run(ctx, run_id) is True
    done, _ = await asyncio.wait({task}, timeout=30)
    assert done and not task.cancelled() and task.result().run.status == "cancelled"
    assert (await runtime.get_run(ctx, run_id)).status == "cancelled"
