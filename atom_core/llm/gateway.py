"""The LLM gateway: the only module that calls litellm for completions.

One call = one `llm.call` span. Around litellm it adds what every provider
needs the same way: tenant credentials, a timeout, retries with exponential
backoff and full jitter on retryable failures only (429, 5xx, timeouts,
connection errors), an ordered list of fallback models, token usage, and
cost in integer micro-dollars from the tenant's or litellm's prices.
litellm's own retries are switched off so the policy lives in one place.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from atom_core.analytics.spans import Span, TraceRecorder
from atom_core.context import Ctx
from atom_core.errors import AtomError, Forbidden
from atom_core.infra import egress
from atom_core.llm import OFFLINE_MODEL, OFFLINE_PROVIDER, failures, pricing, providers
from atom_core.llm.engine import litellm, load
from atom_core.llm.model_config import config_for
from atom_core.settings import get_settings

TokenSink = Callable[[str], Awaitable[None]]
# Providers that run without a key (local servers); any other needs the tenant's own.
KEYLESS_PROVIDERS = frozenset({OFFLINE_PROVIDER, *providers.LOCAL_SERVER_PROVIDERS})


class ModelError(AtomError):
    """The model (after retries and fallbacks) did not answer."""

    status = 502
    code = "model_error"


class ProviderNotConfigured(AtomError):
    status = 422
    code = "provider_not_configured"


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    fallbacks: Sequence[str] = ()
    timeout_s: float | None = None  # default: ATOM_LLM_TIMEOUT_S


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the model wrote it

    def to_openai(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass
class ChatResult:
    content: str
    tool_calls: list[ToolCall]
    model: str  # the model that answered (a fallback, perhaps)
    prompt_tokens: int
    completion_tokens: int
    cost_micros: int
    latency_ms: int
    attempts: int
    finish_reason: str = "stop"
    retry_delays_s: list[float] = field(default_factory=list)

    def assistant_message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.content or None}
        if self.tool_calls:
            message["tool_calls"] = [call.to_openai() for call in self.tool_calls]
        return message


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int
    base_s: float
    max_s: float

    @classmethod
    def from_settings(cls) -> RetryPolicy:
        s = get_settings()
        return cls(s.llm_max_retries, s.llm_retry_base_s, s.llm_retry_max_s)

    def delay(self, retry: int, error: BaseException) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**retry)]; a Retry-After wins if larger."""
        ceiling = min(self.max_s, self.base_s * 2**retry)
        delay = random.uniform(0, ceiling)  # noqa: S311 - jitter, not secrecy
        return max(delay, min(_retry_after(error), self.max_s))


async def complete(
    ctx: Ctx,
    request: ChatRequest,
    *,
    trace: TraceRecorder | None = None,
    parent: Span | None = None,
    on_token: TokenSink | None = None,
    policy: RetryPolicy | None = None,
) -> ChatResult:
    """Ask the model (then each fallback) until one answers; stream tokens to `on_token`."""
    policy = policy or RetryPolicy.from_settings()
    trace = trace or TraceRecorder()
    span = trace.start("llm.call", request.model, parent, model=request.model)
    started = time.perf_counter()
    tally = _Tally()
    failure: _Failed | None = None
    for model in (request.model, *request.fallbacks):
        config = await config_for(ctx, model)
        try:
            _check_configured(model, config.credentials)
            result = await _ask(model, request, config.credentials, on_token, policy, tally)
        except (ProviderNotConfigured, Forbidden) as exc:
            trace.end(span, error=exc.message, attempts=tally.attempts)
            raise
        except _Failed as failed:
            failure = failed
            if failed.final:
                break
            continue
        result.cost_micros = pricing.cost_micros(config.price, result.prompt_tokens, result.completion_tokens)
        result.attempts, result.retry_delays_s = tally.attempts, tally.delays
        result.latency_ms = int((time.perf_counter() - started) * 1000)
        trace.end(span, **_span_fields(result))
        return result
    assert failure is not None
    message = failures.describe_failure(failure.error)
    trace.end(span, error=message, attempts=tally.attempts, retry_delays_s=tally.delays)
    raise ModelError(message, field="model" if _is_bad_request(failure.error) else None)


@dataclass
class _Tally:
    attempts: int = 0
    delays: list[float] = field(default_factory=list)


class _Failed(Exception):
    """One model gave up; `final` means no fallback may be tried either."""

    def __init__(self, error: BaseException, final: bool):
        super().__init__(type(error).__name__)  # never the provider's text (see failures)
        self.error, self.final = error, final


async def _ask(
    model: str,
    request: ChatRequest,
    credentials: providers.Credentials,
    on_token: TokenSink | None,
    policy: RetryPolicy,
    tally: _Tally,
) -> ChatResult:
    """One model, with retries on retryable failures only."""
    for retry in range(policy.max_retries + 1):
        tally.attempts += 1
        streamed = _StreamGuard(on_token)
        try:
            return await _call(model, request, credentials, streamed if on_token else None)
        except Forbidden:
            raise
        except Exception as exc:
            # Tokens already reached the caller (a retry would repeat them), or the input itself is wrong.
            final = streamed.used or _is_bad_request(exc)
            if final or not _is_retryable(exc) or retry == policy.max_retries:
                raise _Failed(exc, final) from exc
            tally.delays.append(policy.delay(retry, exc))
            await asyncio.sleep(tally.delays[-1])
    raise AssertionError("unreachable: the last attempt returns or raises")


def _check_configured(model: str, credentials: providers.Credentials) -> None:
    provider = providers.provider_of(model)
    if reason := providers.ambient_refusal(provider):
        raise ProviderNotConfigured(reason, field="model")
    if credentials.api_key or credentials.api_base or provider in KEYLESS_PROVIDERS:
        return
    if get_settings().allow_env_provider_keys:
        return
    raise ProviderNotConfigured(
        f"no API key for provider '{provider}' in this tenant: add one under Settings → Providers "
        f"(or use the offline model '{OFFLINE_MODEL}')",
        field="model",
    )


class _StreamGuard:
    """Forwards tokens and remembers whether any reached the caller."""

    def __init__(self, sink: TokenSink | None):
        self.sink, self.used = sink, False

    async def __call__(self, token: str) -> None:
        self.used = True
        if self.sink:
            await self.sink(token)


async def _call(
    model: str, request: ChatRequest, credentials: providers.Credentials, on_token: TokenSink | None
) -> ChatResult:
    timeout = request.timeout_s or get_settings().llm_timeout_s
    kwargs: dict[str, Any] = {
        "model": model,
        "messages": request.messages,
        "timeout": timeout,
        "num_retries": 0,  # retries are ours (see module docstring)
        "max_retries": 0,
        "api_key": credentials.litellm_key(),
        "api_base": credentials.api_base,
        # litellm 1.106 imports its MCP proxy handler (and the `mcp` package) whenever
        # tools are passed; ATOM runs its own tools, so skip it. Re-check on upgrade.
        "_skip_mcp_handler": True,
    }
    if request.tools:
        kwargs["tools"] = request.tools
    if request.temperature is not None:
        kwargs["temperature"] = request.temperature
    if request.max_tokens is not None:
        kwargs["max_tokens"] = request.max_tokens
    ll = await load()
    with egress.connections_checked() as connections:
        try:
            async with asyncio.timeout(timeout):  # guards the whole stream, not only the first byte
                if on_token is None:
                    return _from_response(model, await ll.acompletion(**kwargs))
                stream = await ll.acompletion(**kwargs, stream=True, stream_options={"include_usage": True})
                return await _from_stream(model, stream, _outside_checks(on_token))
        except Exception:
            if connections.refused:  # litellm went somewhere the static check could not foresee
                raise Forbidden(f"the provider's address {connections.refused}", field="api_base") from None
            raise


def _outside_checks(on_token: TokenSink) -> TokenSink:
    async def sink(token: str) -> None:
        with egress.connections_unchecked():
            await on_token(token)

    return sink


def _from_response(model: str, response: Any) -> ChatResult:
    choice = response.choices[0]
    calls = [ToolCall(c.id, c.function.name, c.function.arguments or "{}") for c in choice.message.tool_calls or []]
    return _result(model, choice.message.content or "", calls, response.usage, choice.finish_reason or "stop")


async def _from_stream(model: str, stream: Any, on_token: TokenSink) -> ChatResult:
    text: list[str] = []
    calls: dict[int, dict[str, str]] = {}
    usage, finish = None, "stop"
    async for chunk in stream:
        usage = getattr(chunk, "usage", None) or usage
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        delta = choice.delta
        if delta.content:
            text.append(delta.content)
            await on_token(delta.content)
        for part in delta.tool_calls or []:
            call = calls.setdefault(part.index or 0, {"id": "", "name": "", "arguments": ""})
            call["id"] = part.id or call["id"]
            if part.function:
                call["name"] += part.function.name or ""
                call["arguments"] += part.function.arguments or ""
    tool_calls = [ToolCall(c["id"], c["name"], c["arguments"] or "{}") for _, c in sorted(calls.items())]
    return _result(model, "".join(text), tool_calls, usage, finish)


def _result(model: str, content: str, calls: list[ToolCall], usage: Any, finish: str) -> ChatResult:
    """One attempt's answer; cost, latency and attempts are filled in by `complete`."""
    return ChatResult(
        content=content,
        tool_calls=calls,
        model=model,
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
        cost_micros=0,
        latency_ms=0,
        attempts=1,
        finish_reason=finish,
    )


def _is_bad_request(error: BaseException | None) -> bool:
    status = failures.status_of(error) if error else None
    return status is not None and 400 <= status < 500 and status not in (401, 403, 404, 408, 409, 429)


def _is_retryable(error: BaseException) -> bool:
    if isinstance(error, TimeoutError | asyncio.TimeoutError):
        return True
    ll = litellm()
    if isinstance(error, ll.Timeout | ll.APIConnectionError | ll.RateLimitError | ll.ServiceUnavailableError):
        return True
    status = failures.status_of(error)
    return status is not None and (status >= 500 or status in (408, 409, 429))


def _retry_after(error: BaseException) -> float:
    response = getattr(error, "response", None)
    header = getattr(response, "headers", {}).get("retry-after") if response is not None else None
    try:
        return float(header) if header else 0.0
    except ValueError:
        return 0.0


def _span_fields(result: ChatResult) -> dict[str, Any]:
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "cost_micros": result.cost_micros,
        "model": result.model,
        "attempts": result.attempts,
        "retry_delays_s": result.retry_delays_s,
        "tool_calls": json.dumps([c.name for c in result.tool_calls]),
    }
