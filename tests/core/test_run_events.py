"""A run's events on the bus (tokens coalesced, everything in order) and
cancellation through the bus, on both backends: the in-process bus and Redis."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest
import redis.asyncio as aioredis

from atom_core.agents import cancellation, run_events, runtime
from atom_core.agents import service as agents
from atom_core.infra import events
from atom_core.llm import providers
from atom_core.tenancy import service as tenancy
from tests.conftest import PASSWORD
from tests.llm_stub import LLMStub, Reply, ToolCall

pytestmark = pytest.mark.usefixtures("loopback_allowed")  # the LLM stub listens on 127.0.0.1


async def new_ctx(name: str = "Events"):
    signup = await tenancy.signup(f"{uuid.uuid4().hex[:8]}@example.com", PASSWORD, name, client_ip="t")
    return await tenancy.authenticate(signup.token)


@pytest.fixture
async def ctx(backend: str):
    return await new_ctx()


async def stub_agent(ctx, stub: LLMStub, slug: str = "helper", **fields) -> agents.Agent:
    await providers.set_provider(ctx, "openai", api_key="sk-test-key", api_base=stub.base_url)
    data = agents.AgentInput(slug=slug, name=slug.title(), model="openai/stub-model", **fields)
    return await agents.create_agent(ctx, data)


async def until_finished(received: AsyncIterator[dict]) -> list[dict]:
    seen = []
    async for event in received:
        seen.append(event)
        if event["type"] in ("run.finished", "run.failed"):
            return seen
    raise AssertionError("the subscription ended before the run did")


# --- events on the bus -------------------------------------------------------------------


async def test_a_bus_subscriber_reads_the_whole_run_in_order(ctx, llm_stub: LLMStub) -> None:
    helper = await stub_agent(ctx, llm_stub, tools=["calculator"])
    answer = " ".join(f"word{i}" for i in range(150))  # more tokens than one batch holds
    llm_stub.script("stub-model", Reply(tool_calls=[ToolCall("calculator", {"expression": "6*7"})]), Reply(answer))
    requester: list[dict] = []
    collected: list[asyncio.Task] = []

    async with AsyncExitStack() as stack:

        async def sink(event: dict) -> None:
            requester.append(event)
            if event["type"] == "run.started":  # the sink runs before the bus publish of the same event
                channel = events.channel(ctx.tenant_id, run_events.topic(event["run_id"]))
                received = await stack.enter_async_context(events.get_bus().listen(channel))
                collected.append(asyncio.create_task(until_finished(received)))

        outcome = await runtime.run_agent(ctx, helper.id, "compute, then talk", on_event=sink)
        seen = await asyncio.wait_for(collected[0], 10)

    assert outcome.run.status == "succeeded" and outcome.run.output == answer
    kinds = [e["type"] for e in seen]
    tokens = [e for e in seen if e["type"] == "token"]
    assert kinds == ["run.started", "tool.started", "tool.finished"] + ["token"] * len(tokens) + ["run.finished"]
    assert "".join(e["text"] for e in tokens) == answer
    assert sum(e["chunks"] for e in tokens) == 150 and all(e["chunks"] <= run_events.TOKEN_BATCH_MAX for e in tokens)
    assert seen[2]["name"] == "calculator" and json.loads(seen[2]["output"])["result"] == 42
    assert {e["run_id"] for e in seen} == {str(outcome.run.id)}
    # The requester still gets one event per token.
    assert len([e for e in requester if e["type"] == "token"]) == 150


async def test_a_run_nobody_streams_is_not_streamed_and_its_answer_is_one_token_event(ctx, llm_stub: LLMStub) -> None:
    helper = await stub_agent(ctx, llm_stub)
    llm_stub.script("stub-model", Reply("a whole answer at once"))
    # Every run channel of the tenant: the run id is not known before the run starts.
    async with events.get_bus().listen_pattern(events.channel(ctx.tenant_id, "agent-runs:*")) as received:
        outcome = await runtime.run_agent(ctx, helper.id, "hi")  # no sink: nobody reads tokens as they come
        seen = await asyncio.wait_for(until_finished(event async for _, event in received), 10)
    assert [(e["type"], e.get("text")) for e in seen] == [
        ("run.started", None),
        ("token", "a whole answer at once"),
        ("run.finished", None),
    ]
    assert seen[-1]["output"] == outcome.run.output
    (call,) = llm_stub.calls("stub-model")
    assert not call.body.get("stream")


async def test_tokens_are_published_in_batches_and_before_the_next_event(ctx, monkeypatch) -> None:
    monkeypatch.setattr(run_events, "TOKEN_BATCH_S", 3600)  # only the size and the next event flush here
    run_id = uuid.uuid4()
    emit = run_events.RunEvents(ctx, run_id, None)
    channel = events.channel(ctx.tenant_id, run_events.topic(run_id))
    async with events.get_bus().listen(channel) as received:
        for i in range(150):
            await emit.token(f"t{i} ")
        await emit("run.finished", output="done")
        seen = await asyncio.wait_for(until_finished(received), 10)
    assert [(e["type"], e.get("chunks")) for e in seen] == [
        ("token", 64),
        ("token", 64),
        ("token", 22),
        ("run.finished", None),
    ]
    assert "".join(e["text"] for e in seen[:3]) == "".join(f"t{i} " for i in range(150))


async def test_a_pause_in_the_stream_flushes_the_tokens_waiting(ctx, monkeypatch) -> None:
    monkeypatch.setattr(run_events, "TOKEN_BATCH_S", 0.01)
    run_id = uuid.uuid4()
    emit = run_events.RunEvents(ctx, run_id, None)
    channel = events.channel(ctx.tenant_id, run_events.topic(run_id))
    async with events.get_bus().listen(channel) as received:
        await emit.token("alone")
        # No other event follows: only the timer can publish it.
        first = await asyncio.wait_for(anext(received), 10)
    assert first == {"type": "token", "run_id": str(run_id), "text": "alone", "chunks": 1}


async def test_another_tenant_never_receives_the_runs_events(ctx) -> None:
    other = await new_ctx("Other")
    run_id = uuid.uuid4()
    bus = events.get_bus()
    async with (
        bus.listen(events.channel(other.tenant_id, run_events.topic(run_id))) as theirs,
        bus.listen(events.channel(ctx.tenant_id, run_events.topic(run_id))) as ours,
    ):
        await run_events.RunEvents(ctx, run_id, None)("run.finished", output="secret")
        await run_events.RunEvents(other, run_id, None)("run.finished", output="theirs")
        assert (await asyncio.wait_for(anext(ours), 10))["output"] == "secret"
        assert (await asyncio.wait_for(anext(theirs), 10))["output"] == "theirs"  # and not "secret" first


# --- cancellation through the bus ----------------------------------------------------------


async def start_slow_run(ctx, agent: agents.Agent) -> tuple[uuid.UUID, asyncio.Task]:
    started: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def sink(event: dict) -> None:
        if event["type"] == "run.started" and not started.done():
            started.set_result(event["run_id"])

    task = asyncio.create_task(runtime.run_agent(ctx, agent.id, "take your time", on_event=sink))
    return uuid.UUID(await asyncio.wait_for(started, 10)), task


async def ended(task: asyncio.Task) -> runtime.RunOutcome:
    """The run's outcome. Not `wait_for`: its timeout cancels the task, and a cancelled run
    returns normally, which would pass for the cancellation under test."""
    done, _ = await asyncio.wait({task}, timeout=30)
    assert done, "the run did not end"
    return task.result()


async def publish_from_another_node(backend: str, tenant_ids: list, run_ids: list[uuid.UUID]) -> None:
    """Cancel requests sent the way another process would: its own Redis connection
    (server mode), or the in-process bus (embedded mode) — never this process's run table."""
    requests = [
        (events.channel(tenant_id, cancellation.TOPIC), {"run_id": str(run_id)})
        for tenant_id, run_id in zip(tenant_ids, run_ids, strict=True)
    ]
    if backend == "embedded":
        for channel, event in requests:
            await events.get_bus().publish(channel, event)
        return
    other_node = aioredis.from_url(os.environ["ATOM_REDIS_URL"], decode_responses=True)
    try:
        for channel, event in requests:  # one connection: Redis delivers them in this order
            await other_node.publish(channel, json.dumps(event))
    finally:
        await other_node.aclose()


async def test_a_cancel_request_on_the_bus_cancels_the_run_where_it_executes(
    backend: str, ctx, llm_stub: LLMStub
) -> None:
    slow = await stub_agent(ctx, llm_stub, slug="slow")
    llm_stub.set_default("stub-model", Reply("too late"), latency=30)
    run_id, task = await start_slow_run(ctx, slow)

    await publish_from_another_node(backend, [ctx.tenant_id], [run_id])

    outcome = await ended(task)
    assert outcome.run.status == "cancelled" and outcome.run.error == "the run was cancelled"
    assert (await runtime.get_run(ctx, run_id)).status == "cancelled"


async def test_a_cancel_request_only_reaches_runs_of_its_own_tenant(backend: str, ctx, llm_stub: LLMStub) -> None:
    other = await new_ctx("Other")
    slow = await stub_agent(ctx, llm_stub, slug="slow")
    llm_stub.set_default("stub-model", Reply("too late"), latency=30)
    (kept, kept_task), (cancelled, cancelled_task) = await start_slow_run(ctx, slow), await start_slow_run(ctx, slow)

    # The other tenant names our run on its own channel; then our tenant cancels the second run.
    # The listener handles requests in order, so when the second run ends the first request was seen.
    await publish_from_another_node(backend, [other.tenant_id, ctx.tenant_id], [kept, cancelled])
    assert (await ended(cancelled_task)).run.status == "cancelled"
    assert kept_task.cancelling() == 0 and not kept_task.done()
    assert (await runtime.get_run(ctx, kept)).status == "running"

    assert await runtime.cancel_run(ctx, kept) is True
    assert (await ended(kept_task)).run.status == "cancelled"


async def test_one_listener_serves_every_run_of_the_process(ctx, llm_stub: LLMStub) -> None:
    helper = await stub_agent(ctx, llm_stub)
    await asyncio.gather(*(runtime.run_agent(ctx, helper.id, f"hello {i}") for i in range(5)))
    listener = cancellation._listener
    await runtime.run_agent(ctx, helper.id, "once more")
    assert cancellation._listener is listener and not listener.task.done()


async def test_the_process_that_cancels_a_run_says_so(backend: str, ctx, llm_stub: LLMStub) -> None:
    slow = await stub_agent(ctx, llm_stub, slug="slow")
    llm_stub.set_default("stub-model", Reply("too late"), latency=30)
    run_id, task = await start_slow_run(ctx, slow)
    assert await cancellation.request(ctx, run_id) is True  # as a requester on another node sees it
    outcome = await ended(task)
    assert outcome.run.status == "cancelled" and outcome.run.error == "the run was cancelled"


async def test_a_run_left_running_by_a_dead_process_is_cancelled_by_the_requester(
    backend: str, ctx, llm_stub: LLMStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No process answers the request: the run is recorded as cancelled, and its followers told."""
    monkeypatch.setattr(cancellation, "ACK_WAIT_S", 0.3)
    helper = await stub_agent(ctx, llm_stub)
    orphan = await runtime._start(ctx, helper, "s1", "hello")  # its process died before it ended
    bus = events.get_bus()
    async with bus.listen(events.channel(ctx.tenant_id, run_events.topic(orphan.id))) as followed:
        assert await runtime.cancel_run(ctx, orphan.id) is True
        event = await asyncio.wait_for(anext(followed), 10)
    assert event["type"] == "run.failed" and event["status"] == "cancelled"
    run = await runtime.get_run(ctx, orphan.id)
    assert run.status == "cancelled" and run.error == runtime.ABANDONED and run.finished_at is not None
    assert await runtime.cancel_run(ctx, orphan.id) is False  # ended: nothing left to cancel


async def test_a_task_cancelled_while_publishing_is_cancelled(backend: str) -> None:
    """A cancellation that lands while the bus waits for Redis's reply is never swallowed
    (redis-py's own socket_timeout swallowed about half of them: see infra/redis.py)."""
    bus, channel = events.get_bus(), events.channel(uuid.uuid4(), "cancel-probe")
    swallowed = 0
    for turn in range(60):

        async def publish_then_wait() -> None:
            await bus.publish(channel, {"type": "probe"})
            await asyncio.sleep(0)
            await bus.publish(channel, {"type": "probe"})
            await asyncio.sleep(30)  # reached only if the cancellation was lost

        task = asyncio.create_task(publish_then_wait())
        for _ in range(turn % 6 + 1):  # land the cancel at different points of a publish
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=2)
        if not done:
            swallowed += 1
            task.cancel()
            await asyncio.wait({task})
        else:
            assert task.cancelled()
    assert swallowed == 0, f"{swallowed} of 60 cancellations were swallowed"
