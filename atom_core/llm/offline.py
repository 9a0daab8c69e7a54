"""ATOM's offline model: deterministic, free, and honest about being offline.

Registered with litellm as the custom provider `atom` (model "atom/offline"),
so it goes through the same gateway, token, cost and trace code as any
provider. Its rules make demos meaningful: arithmetic asks for the
calculator, date questions ask for datetime_now, recall questions ask for
memory_search, tool results are reported back, and otherwise it answers from
the context it was given.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from litellm import CustomLLM
from litellm.types.utils import GenericStreamingChunk, ModelResponse

from atom_core.llm import OFFLINE_MODEL

LABEL = "[offline model]"
_EXPRESSION = re.compile(r"[-+(]?\s*\d[\d\s.+\-*/%^()]*[\d)]")
_OPERATOR = re.compile(r"\d\s*[-+*/%^]\s*[\d(]")
_DATE_WORDS = re.compile(r"\b(time|date|today|day is it|now)\b", re.I)
_RECALL_WORDS = re.compile(r"\b(remember|recall|what did i|earlier|last time)\b", re.I)


def words(text: str) -> int:
    return len(text.split())


def _text(message: dict[str, Any]) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):  # content parts
        content = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def _tool_names(optional_params: dict[str, Any]) -> set[str]:
    return {t.get("function", {}).get("name", "") for t in optional_params.get("tools") or []}


def decide(messages: list[dict[str, Any]], tools: set[str]) -> tuple[str, dict[str, Any] | None]:
    """(reply text, tool call or None) for a conversation. Pure and deterministic."""
    last = messages[-1] if messages else {"role": "user", "content": ""}
    if last.get("role") == "tool":
        return _report_tool_results(messages), None
    question = _text(last)
    call = _tool_call_for(question, tools)
    if call:
        return "", call
    return _answer(messages, question), None


def _tool_call_for(question: str, tools: set[str]) -> dict[str, Any] | None:
    if "calculator" in tools and _OPERATOR.search(question):
        expression = max(_EXPRESSION.findall(question), key=len).strip().replace("^", "**")
        return {"name": "calculator", "arguments": {"expression": expression}}
    if "memory_search" in tools and _RECALL_WORDS.search(question):
        return {"name": "memory_search", "arguments": {"query": question}}
    if "datetime_now" in tools and _DATE_WORDS.search(question):
        return {"name": "datetime_now", "arguments": {}}
    return None


def _report_tool_results(messages: list[dict[str, Any]]) -> str:
    results = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        results.append(f"{message.get('name') or 'tool'} returned {_text(message)}")
    return f"{LABEL} " + "; ".join(reversed(results)) + "."


def _answer(messages: list[dict[str, Any]], question: str) -> str:
    system = next((_text(m) for m in messages if m.get("role") == "system"), "")
    role = system.split(".")[0].strip() if system else "I am an ATOM agent"
    context = [_text(m) for m in messages[:-1] if m.get("role") in ("user", "assistant")]
    parts = [f"{LABEL} {role}.", f'You asked: "{question.strip()}".']
    if context:
        parts.append(f"Earlier in this conversation: {_shorten(context[-1])}")
    parts.append("Connect a model provider in Settings for a real answer.")
    return " ".join(parts)


def _shorten(text: str, limit: int = 30) -> str:
    chosen = text.split()
    return " ".join(chosen[:limit]) + (" …" if len(chosen) > limit else "")


class OfflineModel(CustomLLM):
    """The litellm handler; all logic is in `decide`."""

    def _decide(self, messages: list, optional_params: dict) -> tuple[str, dict[str, Any] | None, int]:
        text, call = decide(messages, _tool_names(optional_params))
        prompt_tokens = sum(words(_text(m)) for m in messages)
        return text, call, prompt_tokens

    def completion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> ModelResponse:
        text, call, prompt_tokens = self._decide(messages, kwargs.get("optional_params") or {})
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if call:
            message["tool_calls"] = [_openai_tool_call(call)]
        completion_tokens = words(text) + (words(json.dumps(call["arguments"])) if call else 0)
        return ModelResponse(
            model=OFFLINE_MODEL,
            choices=[{"index": 0, "message": message, "finish_reason": "tool_calls" if call else "stop"}],
            usage={
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        )

    async def acompletion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> ModelResponse:
        return self.completion(model, messages, *args, **kwargs)

    def streaming(self, model: str, messages: list, *args: Any, **kwargs: Any) -> Iterator[GenericStreamingChunk]:
        yield from self._chunks(messages, kwargs.get("optional_params") or {})

    async def astreaming(
        self, model: str, messages: list, *args: Any, **kwargs: Any
    ) -> AsyncIterator[GenericStreamingChunk]:
        for chunk in self._chunks(messages, kwargs.get("optional_params") or {}):
            yield chunk

    def _chunks(self, messages: list, optional_params: dict) -> Iterator[GenericStreamingChunk]:
        text, call, prompt_tokens = self._decide(messages, optional_params)
        pieces = re.findall(r"\S+\s*", text)
        for piece in pieces:
            yield _chunk(piece)
        completion_tokens = len(pieces)
        tool_use = None
        if call:
            openai_call = _openai_tool_call(call)
            tool_use = {"id": openai_call["id"], "type": "function", "function": openai_call["function"], "index": 0}
            completion_tokens += words(json.dumps(call["arguments"]))
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        yield _chunk("", tool_use=tool_use, finish="tool_calls" if call else "stop", usage=usage)


def _openai_tool_call(call: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"call_{uuid.uuid5(uuid.NAMESPACE_URL, json.dumps(call, sort_keys=True)).hex[:24]}",
        "type": "function",
        "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])},
    }


def _chunk(text: str, *, tool_use: Any = None, finish: str = "", usage: Any = None) -> GenericStreamingChunk:
    return {
        "text": text,
        "tool_use": tool_use,
        "is_finished": bool(finish),
        "finish_reason": finish,
        "usage": usage,
        "index": 0,
    }
