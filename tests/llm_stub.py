"""A scriptable OpenAI-compatible server on loopback that stands in for model providers.

Tests and benchmarks point LiteLLM at `stub.base_url` (model "openai/<name>"), so the real
HTTP path runs: the OpenAI SDK, LiteLLM's error mapping, retries, timeouts, SSE parsing.

    with LLMStub() as stub:
        stub.script("gpt-4o-mini", Fail(429), Reply("hi", tool_calls=[ToolCall("search", {"q": "x"})]))
        await litellm.acompletion(model="openai/gpt-4o-mini", api_base=stub.base_url, api_key="sk-test", ...)
        assert stub.calls("gpt-4o-mini")[0].headers["authorization"] == "Bearer sk-test"

Each model name has a FIFO queue of steps; when it is empty the model's default step answers
(initially `Echo()`: the last user message comes back). The server runs uvicorn in its own thread
and event loop, so it never blocks the test's loop and serves hundreds of requests at once.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import os
import random
import re
import socket
import struct
import threading
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

# LiteLLM otherwise downloads its price list on import; set before anyone imports it.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

# --- scripted steps ---------------------------------------------------------------------


@dataclass
class _Step:
    latency: float = field(default=0.0, kw_only=True)  # seconds to wait before answering


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str | None = None  # None: the stub makes one up ("call_<n>")


@dataclass
class Reply(_Step):
    content: str | None = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    prompt_tokens: int | None = None  # None: words in all request messages
    completion_tokens: int | None = None  # None: words in the reply and its tool calls
    finish_reason: str | None = None  # None: "tool_calls" if there are tool calls, else "stop"
    token_delay: float = 0.0  # pause between streamed chunks, to observe streaming end to end


@dataclass
class Echo(_Step):
    """Reply with the last user message (the default behaviour)."""


@dataclass
class Fail(_Step):
    status: int = 500
    message: str | None = None  # None: a message like the real provider's for that status
    retry_after: float | None = None  # sent as the Retry-After header
    type: str | None = None  # None: OpenAI's error type for that status
    code: str | None = None


@dataclass
class Hang(_Step):
    """Never answer; the request ends when the client gives up (or the stub stops)."""


Step = Reply | Echo | Fail | Hang

# OpenAI's error bodies per status. LiteLLM reads them: e.g. any error whose text contains
# "invalid_request_error" becomes BadRequestError whatever the status, unless it also says
# "Incorrect API key provided" (then AuthenticationError); "model_not_found" gives NotFoundError.
_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("permission_error", None, "You are not allowed to sample from this model."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
}
_SERVER_ERROR = ("server_error", None, "The server had an error while processing your request.")
_OTHER_ERROR = ("api_error", None, "The request failed.")  # neutral, so LiteLLM maps it by status
_STOPPED = Fail(503, "The LLM stub is stopping.")


@dataclass
class RecordedRequest:
    path: str
    model: str | None
    body: dict[str, Any] | None
    headers: dict[str, str]  # lower-case names, e.g. headers["authorization"]
    at: float = field(default_factory=time.monotonic)  # time.monotonic() on arrival


# --- the server ---------------------------------------------------------------------------


class LLMStub:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self._port = host, port
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None  # wakes slow and hanging handlers on stop()
        self._ids = itertools.count(1)
        self.in_flight = 0
        self.reset()

    # lifecycle

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self._port}/v1"

    def start(self) -> LLMStub:
        # Bind here so the port is known (and free) before the thread starts.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._port))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app(),
            lifespan="off",
            log_config=None,  # leave the process's logging setup alone; errors still reach pytest
            log_level="warning",
            access_log=False,
            backlog=4096,  # the benchmark opens 500 connections at once
            timeout_keep_alive=60,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(sock),), name="llm-stub", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("LLM stub failed to start")
            time.sleep(0.01)
        return self

    async def _serve(self, sock: socket.socket) -> None:
        self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
        await self._server.serve(sockets=[sock])

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        # Slow and hanging requests answer 503 at once, so uvicorn shuts down without cancelling them.
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._server = self._thread = self._loop = self._stopping = None

    def __enter__(self) -> LLMStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # scripting (thread-safe: called from tests while the server thread reads)

    def script(self, model: str, *steps: Step) -> None:
        """Queue steps for `model`; each request to it takes the next one."""
        with self._lock:
            self._queues[model].extend(steps)

    def set_default(self, model: str | None = None, step: Step | None = None, *, latency: float = 0.0) -> None:
        """What `model` (None: every model) answers when its queue is empty; `step` None means Echo."""
        step = step or Echo()
        if latency:
            step = replace(step, latency=latency)
        with self._lock:
            self._defaults[model] = step

    def pending(self, model: str) -> int:
        """Scripted steps not consumed yet."""
        with self._lock:
            return len(self._queues[model])

    def reset(self) -> None:
        """Forget scripts, defaults, records and counters (the server keeps running)."""
        with self._lock:
            self._queues: dict[str, deque[Step]] = defaultdict(deque)
            self._defaults: dict[str | None, Step] = {None: Echo()}
            self._requests: list[RecordedRequest] = []
            # Requests still hanging from an earlier test stay counted in in_flight.
            self.max_in_flight = self.in_flight
            self.embedding_dim = 8

    def _next_step(self, model: str) -> Step:
        with self._lock:
            if self._queues[model]:
                return self._queues[model].popleft()
            return self._defaults.get(model) or self._defaults[None]

    # recording

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received, oldest first."""
        with self._lock:
            return list(self._requests)

    def calls(self, model: str | None = None, path: str = "/v1/chat/completions") -> list[RecordedRequest]:
        """Recorded requests to `path`, optionally only those for `model`."""
        return [r for r in self.requests if r.path == path and (model is None or r.model == model)]

    def _record(self, request: Request, body: dict[str, Any] | None) -> None:
        model = body.get("model") if body else None
        with self._lock:
            self._requests.append(RecordedRequest(request.url.path, model, body, dict(request.headers)))

    # HTTP

    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )

    async def _models(self, request: Request) -> Response:
        self._record(request, None)
        with self._lock:
            names = sorted({*self._queues, *(m for m in self._defaults if m)} or {"stub-model"})
        return JSONResponse(
            {"object": "list", "data": [{"id": n, "object": "model", "created": 0, "owned_by": "stub"} for n in names]}
        )

    async def _chat(self, request: Request) -> Response:
        body, step = await self._begin(request)
        try:
            if not isinstance(step, Reply | Echo):
                return await self._answer_other(request, step)
            reply = step if isinstance(step, Reply) else Reply(_last_user_text(body.get("messages", [])))
            message = self._message(reply)
            usage = _usage(reply, body.get("messages", []), message)
            finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
            if body.get("stream"):
                include_usage = (body.get("stream_options") or {}).get("include_usage", False)
                chunks = self._chunks(body["model"], message, finish, usage if include_usage else None)
                return StreamingResponse(_sse(chunks, reply.token_delay), media_type="text/event-stream")
            return JSONResponse(
                {
                    **self._envelope(body["model"], "chat.completion"),
                    "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
                    "usage": usage,
                }
            )
        finally:
            self._end()

    async def _embeddings(self, request: Request) -> Response:
        body, step = await self._begin(request)
        try:
            if not isinstance(step, Reply | Echo):
                return await self._answer_other(request, step)
            texts = body.get("input") or []
            texts = texts if isinstance(texts, list) else [texts]
            if texts and isinstance(texts[0], int):  # a single list of token ids
                texts = [texts]
            dim = body.get("dimensions") or self.embedding_dim
            data = [
                {"object": "embedding", "index": i, "embedding": _embed(str(t), dim, body.get("encoding_format"))}
                for i, t in enumerate(texts)
            ]
            tokens = sum(_words(str(t)) for t in texts)
            return JSONResponse(
                {
                    "object": "list",
                    "model": body["model"],
                    "data": data,
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                }
            )
        finally:
            self._end()

    async def _begin(self, request: Request) -> tuple[dict[str, Any], Step]:
        """Parse and record the request, count it in flight, pick its step and wait its latency."""
        try:
            body = await request.json()
        except ValueError:
            body = None
        self._record(request, body)
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            return {}, Fail(400, "Body must be JSON with a 'model' string.")
        step = self._next_step(body["model"])
        if step.latency and await self._stopped_within(step.latency):
            return body, _STOPPED
        return body, step

    def _end(self) -> None:
        with self._lock:
            self.in_flight -= 1

    async def _stopped_within(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True if stop() was called meanwhile."""
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def _answer_other(self, request: Request, step: Fail | Hang) -> Response:
        if isinstance(step, Hang):
            waits = [asyncio.ensure_future(_until_disconnected(request)), asyncio.ensure_future(self._stopping.wait())]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
            step = _STOPPED  # the client has gone, or the stub is stopping
        type_, code, message = _ERRORS.get(step.status, _SERVER_ERROR if step.status >= 500 else _OTHER_ERROR)
        error = {
            "message": step.message or message,
            "type": step.type or type_,
            "param": None,
            "code": step.code or code,
        }
        headers = {"retry-after": str(step.retry_after)} if step.retry_after is not None else None
        return JSONResponse({"error": error}, status_code=step.status, headers=headers)

    def _message(self, reply: Reply) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": tc.id or f"call_{next(self._ids)}",
                    "type": "function",
                    "function": {"name": tc.name, "arguments": json.dumps(tc.arguments)},
                }
                for tc in reply.tool_calls
            ]
        return message

    def _envelope(self, model: str, kind: str) -> dict[str, Any]:
        return {"id": f"chatcmpl-{next(self._ids)}", "object": kind, "created": int(time.time()), "model": model}

    def _chunks(
        self, model: str, message: dict[str, Any], finish: str, usage: dict[str, int] | None
    ) -> Iterator[dict[str, Any]]:
        """OpenAI's streaming order: role, content pieces, tool call pieces, finish, usage."""
        envelope = self._envelope(model, "chat.completion.chunk")
        extra = {"usage": None} if usage else {}  # with include_usage, OpenAI sends usage: null until the end

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
            return {**envelope, "choices": [choice], **extra}

        yield chunk({"role": "assistant", "content": ""})
        for piece in re.findall(r"\S+\s*|\s+", message["content"] or ""):
            yield chunk({"content": piece})
        for index, tc in enumerate(message.get("tool_calls", [])):
            head = {"index": index, "id": tc["id"], "type": "function"}
            yield chunk({"tool_calls": [{**head, "function": {"name": tc["function"]["name"], "arguments": ""}}]})
            args = tc["function"]["arguments"]
            for start in range(0, len(args), 8):
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": args[start : start + 8]}}]})
        yield chunk({}, finish)
        if usage:
            yield {**envelope, "choices": [], "usage": usage}


# --- helpers ------------------------------------------------------------------------------


async def _sse(chunks: Iterator[dict[str, Any]], delay: float) -> AsyncIterator[str]:
    for c in chunks:
        yield f"data: {json.dumps(c)}\n\n"
        if delay:
            await asyncio.sleep(delay)
    yield "data: [DONE]\n\n"


async def _until_disconnected(request: Request) -> None:
    # The body is already read, so the next ASGI message is the client going away.
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _text(content: Any) -> str:
    """Message content as text: a string or a list of {"type": "text", "text": ...} parts."""
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    return next((_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")


def _words(text: str) -> int:
    return len(text.split())


def _usage(reply: Reply, messages: list[dict[str, Any]], message: dict[str, Any]) -> dict[str, int]:
    prompt = reply.prompt_tokens
    if prompt is None:
        prompt = sum(_words(_text(m.get("content"))) for m in messages)
    completion = reply.completion_tokens
    if completion is None:
        calls = message.get("tool_calls", [])
        completion = _words(reply.content or "") + sum(_words(c["function"]["arguments"]) + 1 for c in calls)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _embed(text: str, dim: int, encoding_format: str | None) -> list[float] | str:
    """A unit vector seeded by the text: the same text always gets the same vector."""
    rng = random.Random(hashlib.sha256(text.encode()).digest())
    vector = [rng.gauss(0, 1) for _ in range(dim)]
    norm = sum(x * x for x in vector) ** 0.5 or 1.0
    vector = [x / norm for x in vector]
    if encoding_format == "base64":  # the OpenAI SDK's default (litellm asks for floats): little-endian float32
        return base64.b64encode(struct.pack(f"<{dim}f", *vector)).decode()
    return vector


# --- pytest fixtures ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def llm_stub_server() -> Iterator[LLMStub]:
    """One running stub for the whole session (starting one per test would be slow)."""
    with LLMStub() as stub:
        yield stub


@pytest.fixture
def loopback_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let providers and http_get reach loopback, where the stub lives: server mode refuses
    private addresses unless ATOM_ALLOW_PRIVATE_NETWORKS says otherwise (atom_core.infra.egress)."""
    from atom_core.settings import reset_settings

    monkeypatch.setenv("ATOM_ALLOW_PRIVATE_NETWORKS", "true")
    reset_settings()


@pytest.fixture
def llm_stub(llm_stub_server: LLMStub) -> LLMStub:
    """The session's stub, with no scripts, defaults or records left from earlier tests."""
    llm_stub_server.reset()
    return llm_stub_server
