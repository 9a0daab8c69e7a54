"""The LLM stub, driven the way the gateway will drive providers: real litellm calls over HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before litellm is imported

import httpx
import litellm
import openai
import pytest

from tests.llm_stub import Echo, Fail, Hang, LLMStub, Reply, ToolCall

litellm.suppress_debug_info = True  # no "Give Feedback / Get Help" banner on every expected error

USER = [{"role": "user", "content": "what is the weather in Paris"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


async def complete(stub: LLMStub, model: str = "gpt-4o-mini", **kwargs):
    kwargs.setdefault("messages", USER)
    if "tools" in kwargs:
        # litellm 1.106 imports its MCP gateway (the optional `mcp` package, not installed)
        # for any call with tools; this private flag skips that and is not sent upstream.
        kwargs["_skip_mcp_handler"] = True
    return await litellm.acompletion(model=f"openai/{model}", api_base=stub.base_url, api_key="sk-test", **kwargs)


async def stream(stub: LLMStub, model: str = "gpt-4o-mini", **kwargs) -> list:
    response = await complete(stub, model, stream=True, **kwargs)
    return [chunk async for chunk in response]


# --- replies ------------------------------------------------------------------------------


async def test_plain_reply_with_scripted_usage(llm_stub: LLMStub) -> None:
    llm_stub.script("gpt-4o-mini", Reply("It is sunny.", prompt_tokens=11, completion_tokens=4))
    response = await complete(llm_stub)
    assert response.choices[0].message.content == "It is sunny."
    assert response.choices[0].finish_reason == "stop"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens, response.usage.total_tokens) == (11, 4, 15)
    assert llm_stub.pending("gpt-4o-mini") == 0


async def test_default_echoes_last_user_message_with_word_counts(llm_stub: LLMStub) -> None:
    messages = [{"role": "system", "content": "be brief"}, *USER, {"role": "assistant", "content": "ok"}]
    response = await complete(llm_stub, messages=messages)
    assert response.choices[0].message.content == USER[0]["content"]
    # Computed usage: words of every message in, words of the reply out.
    assert response.usage.prompt_tokens == 2 + 6 + 1
    assert response.usage.completion_tokens == 6


async def test_queue_is_fifo_per_model_then_falls_back_to_default(llm_stub: LLMStub) -> None:
    llm_stub.script("a", Reply("a1"), Reply("a2"))
    llm_stub.script("b", Reply("b1"))
    llm_stub.set_default("b", Reply("b-default"))
    replies = [(await complete(llm_stub, m)).choices[0].message.content for m in ["a", "b", "a", "b", "a"]]
    assert replies == ["a1", "b1", "a2", "b-default", USER[0]["content"]]
    assert [r.model for r in llm_stub.calls()] == ["a", "b", "a", "b", "a"]


async def test_streaming_reply_reassembles_with_usage(llm_stub: LLMStub) -> None:
    content = "The weather in Paris is sunny, 21 degrees."
    llm_stub.script("gpt-4o-mini", Reply(content, prompt_tokens=7, completion_tokens=9))
    chunks = await stream(llm_stub, stream_options={"include_usage": True})
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(deltas) == len(content.split())  # token by token, not one blob
    assert "".join(deltas) == content
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    usage = [c.usage for c in chunks if getattr(c, "usage", None)]
    assert [(u.prompt_tokens, u.completion_tokens, u.total_tokens) for u in usage] == [(7, 9, 16)]
    assert llm_stub.calls()[0].body["stream_options"] == {"include_usage": True}


async def test_token_delay_spaces_out_streamed_chunks(llm_stub: LLMStub) -> None:
    llm_stub.script("gpt-4o-mini", Reply("one two three four", token_delay=0.1))
    response = await complete(llm_stub, stream=True)
    arrivals = [time.monotonic() async for c in response if c.choices and c.choices[0].delta.content]
    assert len(arrivals) == 4
    assert arrivals[-1] - arrivals[0] >= 0.25  # chunks reach the caller as they are sent, not all at the end


async def test_streaming_without_include_usage_sends_no_usage(llm_stub: LLMStub) -> None:
    llm_stub.script("gpt-4o-mini", Reply("short answer"))
    chunks = await stream(llm_stub)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "short answer"
    assert not [c for c in chunks if getattr(c, "usage", None)]
    assert "stream_options" not in llm_stub.calls()[0].body


# --- tool calls ---------------------------------------------------------------------------


async def test_tool_call_non_streaming(llm_stub: LLMStub) -> None:
    llm_stub.script("gpt-4o-mini", Reply(None, tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="call_1")]))
    response = await complete(llm_stub, tools=[WEATHER_TOOL])
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert (call.id, call.function.name) == ("call_1", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Paris"}


async def test_tool_calls_streaming_arrive_whole(llm_stub: LLMStub) -> None:
    arguments = {"city": "Paris", "units": "metric", "days": [1, 2, 3]}
    calls = [ToolCall("get_weather", arguments), ToolCall("get_time", {"tz": "Europe/Paris"})]
    llm_stub.script("gpt-4o-mini", Reply("Checking.", tool_calls=calls))
    chunks = await stream(llm_stub, tools=[WEATHER_TOOL])
    assembled: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            slot = assembled.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
            slot["id"] += tc.id or ""
            slot["name"] += tc.function.name or ""
            slot["arguments"] += tc.function.arguments or ""
    assert [s["name"] for s in assembled.values()] == ["get_weather", "get_time"]
    assert json.loads(assembled[0]["arguments"]) == arguments
    assert json.loads(assembled[1]["arguments"]) == {"tz": "Europe/Paris"}
    assert all(s["id"].startswith("call_") for s in assembled.values())
    argument_pieces = [c for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert len(argument_pieces) > 4  # arguments came in pieces, not one delta per call
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


async def test_raw_sse_is_exactly_openai_format(llm_stub: LLMStub) -> None:
    llm_stub.script("m", Reply("hi there", tool_calls=[ToolCall("f", {"x": 1})]))
    body = {"model": "m", "messages": USER, "stream": True, "stream_options": {"include_usage": True}}
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{llm_stub.base_url}/chat/completions", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = response.text.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert all(e.startswith("data: ") for e in events[:-2])
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:3]] == ["hi ", "there"]
    assert chunks[3]["choices"][0]["delta"]["tool_calls"][0]["function"] == {"name": "f", "arguments": ""}
    assert chunks[-2]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "tool_calls", "logprobs": None}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert {c["id"] for c in chunks} == {chunks[0]["id"]} and all(
        c["object"] == "chat.completion.chunk" for c in chunks
    )


# --- errors, retries, timeouts ------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "exception"),
    [
        (429, litellm.RateLimitError),
        (500, litellm.InternalServerError),
        (502, litellm.BadGatewayError),
        (503, litellm.ServiceUnavailableError),
        (504, litellm.Timeout),
        (400, litellm.BadRequestError),
        (401, litellm.AuthenticationError),
        (404, litellm.NotFoundError),
        (422, litellm.BadRequestError),
    ],
)
async def test_fail_maps_to_litellm_exception(llm_stub: LLMStub, status: int, exception: type) -> None:
    llm_stub.script("gpt-4o-mini", Fail(status))
    with pytest.raises(exception) as raised:
        await complete(llm_stub, num_retries=0, max_retries=0)
    assert raised.value.status_code == status
    # None of them derives from litellm.APIError; openai.APIError is their common base.
    assert isinstance(raised.value, openai.APIError) and not isinstance(raised.value, litellm.APIError)
    assert len(llm_stub.calls()) == 1  # no retry


async def test_error_type_in_body_outranks_status(llm_stub: LLMStub) -> None:
    # litellm maps by the error text first: "invalid_request_error" means BadRequestError whatever
    # the HTTP status (kept in .status_code), unless the message says "Incorrect API key provided".
    llm_stub.script("gpt-4o-mini", Fail(401, "Key revoked."), Fail(401, "Incorrect API key provided: sk-t***"))
    with pytest.raises(litellm.BadRequestError) as raised:
        await complete(llm_stub, max_retries=0)
    assert raised.value.status_code == 401
    assert "Key revoked." in str(raised.value)
    with pytest.raises(litellm.AuthenticationError):
        await complete(llm_stub, max_retries=0)


async def test_failing_stream_raises_on_the_call(llm_stub: LLMStub) -> None:
    llm_stub.script("gpt-4o-mini", Fail(500, "boom"))
    with pytest.raises(litellm.InternalServerError, match="boom"):
        await stream(llm_stub, max_retries=0)


async def test_litellm_retries_retryable_errors_by_default(llm_stub: LLMStub) -> None:
    # The OpenAI SDK inside litellm retries 408/409/429/5xx twice unless max_retries=0;
    # a small Retry-After keeps its back-off short.
    llm_stub.script("gpt-4o-mini", Fail(429, retry_after=0.01), Fail(503, retry_after=0.01), Reply("third time"))
    response = await complete(llm_stub)
    assert response.choices[0].message.content == "third time"
    assert len(llm_stub.calls("gpt-4o-mini")) == 3


async def test_fail_body_and_retry_after_header(llm_stub: LLMStub) -> None:
    llm_stub.script("m", Fail(429, "slow down", retry_after=7))
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{llm_stub.base_url}/chat/completions", json={"model": "m", "messages": USER})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json() == {
        "error": {"message": "slow down", "type": "requests", "param": None, "code": "rate_limit_exceeded"}
    }


async def test_slow_reply_times_out(llm_stub: LLMStub) -> None:
    llm_stub.script("gpt-4o-mini", Reply("too late", latency=2))
    with pytest.raises(litellm.Timeout):
        await complete(llm_stub, timeout=0.5, max_retries=0)
    [request] = llm_stub.requests
    assert time.monotonic() - request.at < 1.5  # gave up before the reply (timed from arrival: no warm-up)


async def test_timeouts_are_retried_by_default(llm_stub: LLMStub) -> None:
    # timeout= is per attempt and the OpenAI SDK retries timeouts twice by default: the retry
    # silently takes the next scripted step.
    llm_stub.script("gpt-4o-mini", Reply("too late", latency=2), Reply("second attempt"))
    response = await complete(llm_stub, timeout=0.5)
    assert response.choices[0].message.content == "second attempt"
    assert len(llm_stub.calls()) == 2


async def test_hang_never_answers_and_ends_when_client_leaves(llm_stub: LLMStub) -> None:
    llm_stub.script("gpt-4o-mini", Hang())
    with pytest.raises(litellm.Timeout):
        await complete(llm_stub, timeout=0.3, max_retries=0)
    for _ in range(50):  # the server notices the disconnect and lets the request go
        if llm_stub.in_flight == 0:
            break
        await asyncio.sleep(0.05)
    assert llm_stub.in_flight == 0


# --- recording ----------------------------------------------------------------------------


async def test_records_authorization_header_tools_and_model(llm_stub: LLMStub) -> None:
    await complete(llm_stub, "primary", tools=[WEATHER_TOOL], temperature=0.2)
    [request] = llm_stub.requests
    assert request.path == "/v1/chat/completions"
    assert request.model == "primary"
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.body["tools"] == [WEATHER_TOOL]
    assert request.body["messages"] == USER
    assert request.body["temperature"] == 0.2
    assert set(request.body) == {"model", "messages", "tools", "temperature"}  # nothing private leaks


async def test_fixture_starts_each_test_clean(llm_stub: LLMStub) -> None:
    # Earlier tests left requests and a (consumed) script on the same server; none remain.
    assert llm_stub.requests == []
    assert llm_stub.pending("gpt-4o-mini") == 0
    assert (await complete(llm_stub)).choices[0].message.content == USER[0]["content"]


# --- concurrency --------------------------------------------------------------------------


async def test_concurrent_requests_overlap(llm_stub: LLMStub) -> None:
    llm_stub.set_default(latency=0.3)
    prompts = [[{"role": "user", "content": f"question {i}"}] for i in range(200)]
    responses = await asyncio.gather(*(complete(llm_stub, messages=p) for p in prompts))
    assert [r.choices[0].message.content for r in responses] == [f"question {i}" for i in range(200)]
    assert llm_stub.max_in_flight >= 50  # served side by side, not one after another
    assert llm_stub.in_flight == 0


# --- embeddings and models ----------------------------------------------------------------


async def test_embeddings_are_deterministic_with_usage(llm_stub: LLMStub) -> None:
    llm_stub.embedding_dim = 16

    async def embed(texts: list[str]):
        return await litellm.aembedding(
            model="openai/text-embedding-3-small", input=texts, api_base=llm_stub.base_url, api_key="sk-test"
        )

    first = await embed(["hello world", "goodbye"])
    again = await embed(["hello world"])
    vectors = [d["embedding"] for d in first.data]
    assert [len(v) for v in vectors] == [16, 16]
    assert vectors[0] == again.data[0]["embedding"]
    assert vectors[0] != vectors[1]
    assert abs(sum(x * x for x in vectors[0]) - 1) < 1e-9  # unit length, so cosine = dot product
    assert first.usage.prompt_tokens == 3
    assert llm_stub.calls(path="/v1/embeddings")[0].body["input"] == ["hello world", "goodbye"]


async def test_embeddings_dimensions_base64_and_failures(llm_stub: LLMStub) -> None:
    llm_stub.script("emb", Fail(500))
    async with httpx.AsyncClient() as client:
        url = f"{llm_stub.base_url}/embeddings"
        failed = await client.post(url, json={"model": "emb", "input": "x"})
        floats = await client.post(url, json={"model": "emb", "input": "x", "dimensions": 4})
        packed = await client.post(
            url, json={"model": "emb", "input": "x", "dimensions": 4, "encoding_format": "base64"}
        )
    assert failed.status_code == 500 and failed.json()["error"]["type"] == "server_error"
    vector = floats.json()["data"][0]["embedding"]
    assert len(vector) == 4
    decoded = struct.unpack("<4f", base64.b64decode(packed.json()["data"][0]["embedding"]))
    assert decoded == pytest.approx(vector, abs=1e-6)


async def test_models_lists_scripted_and_default_models(llm_stub: LLMStub) -> None:
    llm_stub.script("gpt-4o-mini", Reply("x"))
    llm_stub.set_default("claude-sonnet", Echo(latency=0.1))
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{llm_stub.base_url}/models", headers={"Authorization": "Bearer sk-x"})
    assert [m["id"] for m in response.json()["data"]] == ["claude-sonnet", "gpt-4o-mini"]
    assert llm_stub.requests[0].headers["authorization"] == "Bearer sk-x"


async def test_bad_body_is_a_400(llm_stub: LLMStub) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{llm_stub.base_url}/chat/completions", content=b"not json")
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert llm_stub.requests[0].body is None


# --- lifecycle ----------------------------------------------------------------------------


async def test_context_manager_starts_and_stops_its_own_server() -> None:
    with LLMStub() as stub:
        assert stub.base_url == f"http://127.0.0.1:{stub.port}/v1"
        assert (await complete(stub, "own")).choices[0].message.content == USER[0]["content"]
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{stub.base_url}/models")


async def test_stop_answers_hanging_and_slow_requests_at_once(caplog: pytest.LogCaptureFixture) -> None:
    stub = LLMStub().start()
    stub.script("slow", Reply("late", latency=30))
    stub.set_default("hung", Hang())
    async with httpx.AsyncClient(timeout=30) as client:
        url = f"{stub.base_url}/chat/completions"
        pending = [asyncio.create_task(client.post(url, json={"model": m})) for m in ("slow", "hung")]
        while stub.in_flight < 2:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        await asyncio.to_thread(stub.stop)
        responses = await asyncio.gather(*pending)
    assert time.monotonic() - started < 1
    assert [r.status_code for r in responses] == [503, 503]
    assert not [r for r in caplog.records if r.levelname == "ERROR"]  # no cancelled handlers
