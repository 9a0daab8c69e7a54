"""Run one tool call for the agent loop. Every failure becomes a result the model can read.

Only cancellation of the run itself propagates; refused permission, bad arguments,
timeouts and exceptions are all returned as `ToolResult(ok=False, ...)`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Collection
from typing import Any, Literal

import pydantic
import pydantic_core

from atom_core.agents.tools.builtins import TOOLS
from atom_core.agents.tools.env import ToolEnv
from atom_core.agents.tools.registry import Tool, ToolRegistry
from atom_core.context import Ctx
from atom_core.errors import AtomError

logger = logging.getLogger(__name__)

MAX_OUTPUT_CHARS = 16_000
MAX_ERROR_CHARS = 500

ErrorCode = Literal["refused", "invalid_arguments", "timeout", "error"]


class ToolCallRequest(pydantic.BaseModel):
    """A tool call as the model sent it; `arguments` is the raw JSON text (a dict is accepted too)."""

    model_config = pydantic.ConfigDict(frozen=True)

    id: str
    name: str
    arguments: str | dict[str, Any] = ""

    @classmethod
    def from_openai(cls, call: Any) -> ToolCallRequest:
        """From an OpenAI/LiteLLM tool call: `{"id", "type": "function", "function": {"name", "arguments"}}`,
        as a dict or as the provider's object."""
        if isinstance(call, pydantic.BaseModel):
            call = call.model_dump()
        elif not isinstance(call, dict):
            call = {"id": getattr(call, "id", ""), "function": getattr(call, "function", None)}
        function = call.get("function") or {}
        if not isinstance(function, dict):
            function = {"name": getattr(function, "name", ""), "arguments": getattr(function, "arguments", "")}
        return cls(id=call.get("id") or "", name=function.get("name") or "", arguments=function.get("arguments") or "")


class ToolResult(pydantic.BaseModel):
    """What came of one call. `output` is what the model reads (JSON text, or `{"error": ...}`)."""

    call_id: str
    name: str
    ok: bool
    output: str
    error: str | None = None
    error_code: ErrorCode | str | None = None  # one of ErrorCode, or the code of the AtomError a tool raised
    refused: bool = False
    truncated: bool = False
    duration_ms: float = 0.0

    def to_message(self) -> dict[str, Any]:
        """The chat message that hands this result back to the model."""
        return {"role": "tool", "tool_call_id": self.call_id, "name": self.name, "content": self.output}


def _short(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def _failure(call: ToolCallRequest, started: float, code: str, message: str, *, refused: bool = False) -> ToolResult:
    message = _short(message)
    return ToolResult(
        call_id=call.id,
        name=call.name,
        ok=False,
        output=pydantic_core.to_json({"error": message}).decode(),
        error=message,
        error_code=code,
        refused=refused,
        duration_ms=_ms(started),
    )


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _parse_arguments(tool: Tool, raw: str | dict[str, Any]) -> dict[str, Any]:
    """Validated keyword arguments; raises ValueError with a message that names the bad argument."""
    if isinstance(raw, str):
        if not raw.strip():
            raw = "{}"  # some models send "" for a tool without parameters
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"arguments are not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"arguments must be a JSON object, got {type(raw).__name__}")
    try:
        model = tool.arguments.model_validate(raw)
    except pydantic.ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False, include_input=False):
            where = ".".join(str(part) for part in err["loc"]) or "arguments"
            problems.append(f"{where}: {err['msg']}")
        raise ValueError(f"invalid arguments for {tool.name}: {'; '.join(problems)}") from None
    return {name: getattr(model, name) for name in type(model).model_fields}


def _render(value: Any, limit: int) -> tuple[str, bool]:
    text = value if isinstance(value, str) else pydantic_core.to_json(value, fallback=str).decode()
    if len(text) <= limit:
        return text, False
    return text[:limit] + f"\n…[output truncated: {limit} of {len(text)} characters shown]", True


async def execute(
    ctx: Ctx,
    call: ToolCallRequest,
    *,
    allowed: Collection[str],
    env: ToolEnv,
    timeout_s: float,
    registry: ToolRegistry | None = None,
    max_output_chars: int = MAX_OUTPUT_CHARS,
) -> ToolResult:
    """Run `call` if the agent may use that tool, within `timeout_s`. Never raises for a tool's failure."""
    if isinstance(allowed, str):
        raise TypeError("allowed must be a collection of tool names, not a single string")
    registry = TOOLS if registry is None else registry
    started = time.perf_counter()
    tool = registry.get(call.name) if call.name in allowed else None
    if tool is None:  # checked again here: the model may name any tool, allowed or not
        available = ", ".join(t.name for t in registry.tools(allowed)) or "none"
        logger.info("tool call refused: tool=%r request_id=%s tenant=%s", call.name[:64], ctx.request_id, ctx.tenant_id)
        return _failure(
            call,
            started,
            "refused",
            f"tool {call.name[:64]!r} is not available to this agent (available: {available})",
            refused=True,
        )
    try:
        kwargs = _parse_arguments(tool, call.arguments)
    except ValueError as exc:
        return _failure(call, started, "invalid_arguments", str(exc))
    for param, kind in tool.injected.items():
        kwargs[param] = env if kind == "env" else ctx
    try:
        async with asyncio.timeout(timeout_s) as deadline:
            value = await tool.fn(**kwargs)
        output, truncated = _render(value, max_output_chars)
    except TimeoutError:
        if deadline.expired():
            return _failure(call, started, "timeout", f"tool {tool.name} timed out after {timeout_s:g} s")
        return _failure(call, started, "error", f"tool {tool.name} failed (TimeoutError)")
    except AtomError as exc:  # messages of domain errors are written for users
        return _failure(call, started, exc.code, exc.message)
    except Exception as exc:
        # The message of an arbitrary exception may carry secrets or internals: log it, tell the model less.
        logger.warning(
            "tool %s failed: request_id=%s tenant=%s", tool.name, ctx.request_id, ctx.tenant_id, exc_info=True
        )
        return _failure(call, started, "error", f"tool {tool.name} failed unexpectedly ({type(exc).__name__})")
    return ToolResult(
        call_id=call.id, name=call.name, ok=True, output=output, truncated=truncated, duration_ms=_ms(started)
    )
