"""Tools: async functions whose JSON schema comes from their type hints.

A tool's parameters annotated with `ToolEnv` or `Ctx` are injected by the
executor and never appear in the schema the model sees.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

import pydantic
from pydantic.json_schema import GenerateJsonSchema

from atom_core.agents.tools.env import ToolEnv
from atom_core.context import Ctx
from atom_core.errors import AtomError, Invalid

TAGS: frozenset[str] = frozenset({"read", "write", "network", "code"})
"""Capabilities: `read` no side effects, `write` changes state, `network` leaves the host, `code` runs code."""

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what OpenAI-style function tools accept
_INJECTED: dict[type, str] = {ToolEnv: "env", Ctx: "ctx"}

ToolFn = Callable[..., Awaitable[Any]]


class ToolError(AtomError):
    """A failure a tool reports to the model; its message must be safe to show (no secrets)."""

    code = "tool_error"


class _NoTitles(GenerateJsonSchema):
    def field_title_should_be_set(self, schema: Any) -> bool:  # titles only cost the model tokens
        return False


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    tags: frozenset[str]
    fn: ToolFn
    arguments: type[pydantic.BaseModel]
    injected: dict[str, str] = field(default_factory=dict)  # parameter name -> "env" | "ctx"

    def parameters_schema(self) -> dict[str, Any]:
        schema = self.arguments.model_json_schema(schema_generator=_NoTitles)
        schema.pop("title", None)
        schema.setdefault("properties", {})
        return schema

    def json_schema(self) -> dict[str, Any]:
        """The tool in OpenAI function-tool format (what LiteLLM passes as `tools=[...]`)."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters_schema()},
        }


def _arguments_model(name: str, fn: ToolFn) -> tuple[type[pydantic.BaseModel], dict[str, str]]:
    hints = typing.get_type_hints(fn, include_extras=True)
    fields: dict[str, Any] = {}
    injected: dict[str, str] = {}
    for param in inspect.signature(fn).parameters.values():
        if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            raise TypeError(f"tool {name}: parameter {param.name!r} must be a plain or keyword-only parameter")
        if param.name not in hints:
            raise TypeError(f"tool {name}: parameter {param.name!r} needs a type hint")
        hint = hints[param.name]
        kind = next((k for t, k in _INJECTED.items() if hint is t), None)
        if kind:
            injected[param.name] = kind
            continue
        if param.name.startswith("_"):
            raise TypeError(f"tool {name}: parameter {param.name!r} must not start with an underscore")
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (hint, default)
    model = pydantic.create_model(
        f"{name}_arguments",
        __config__=pydantic.ConfigDict(extra="forbid"),
        **fields,
    )
    return model, injected


def make_tool(fn: ToolFn, *, name: str | None = None, description: str | None = None, tags: Iterable[str]) -> Tool:
    """Build a Tool from an async function; raises TypeError/ValueError for programming mistakes."""
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f"tool {getattr(fn, '__name__', fn)!r} must be an async function")
    tool_name = name or fn.__name__
    if not _NAME.match(tool_name):
        raise ValueError(f"tool name {tool_name!r} must match {_NAME.pattern}")
    tag_set = frozenset([tags] if isinstance(tags, str) else tags)
    if not tag_set or not tag_set <= TAGS:
        raise ValueError(f"tool {tool_name}: tags must be a non-empty subset of {sorted(TAGS)}, got {sorted(tag_set)}")
    text = _tidy(description or inspect.getdoc(fn) or "")
    if not text:
        raise ValueError(f"tool {tool_name}: needs a description (pass one or write a docstring)")
    model, injected = _arguments_model(tool_name, fn)
    return Tool(name=tool_name, description=text, tags=tag_set, fn=fn, arguments=model, injected=injected)


def _tidy(text: str) -> str:
    """Docstring line breaks are layout, not content: one line per paragraph."""
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())


def _names(names: Collection[str] | Iterable[str]) -> list[str]:
    if isinstance(names, str):  # "calculator" would otherwise be read as the letters c, a, l, ...
        raise TypeError("pass a collection of tool names, not a single string")
    return list(names)


class ToolRegistry:
    """Named tools. Registration happens at import time; lookups are read-only afterwards."""

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}

    def register(
        self, fn: ToolFn, *, name: str | None = None, description: str | None = None, tags: Iterable[str]
    ) -> Tool:
        tool = make_tool(fn, name=name, description=description, tags=tags)
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} is already registered")
        self._tools[tool.name] = tool
        return tool

    def tool(
        self, *, name: str | None = None, description: str | None = None, tags: Iterable[str]
    ) -> Callable[[ToolFn], ToolFn]:
        """Decorator form of `register`; returns the function unchanged."""

        def decorate(fn: ToolFn) -> ToolFn:
            self.register(fn, name=name, description=description, tags=tags)
            return fn

        return decorate

    def unregister(self, name: str) -> None:
        """Remove a tool (plugins and tests that add tools for a while)."""
        self._tools.pop(name, None)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def names(self) -> list[str]:
        return sorted(self._tools)

    def tools(self, allowed: Iterable[str]) -> list[Tool]:
        """The registered tools among `allowed`, sorted by name; unknown names are skipped."""
        wanted = set(_names(allowed))
        return [self._tools[n] for n in sorted(wanted) if n in self._tools]

    def schemas(self, allowed: Iterable[str]) -> list[dict[str, Any]]:
        """Function-tool schemas of the allowed tools only, in a stable (name) order."""
        return [tool.json_schema() for tool in self.tools(allowed)]

    def validate_names(self, names: Iterable[str]) -> list[str]:
        """Check an agent's tool list; returns it without duplicates (first occurrence order)."""
        given = _names(names)
        bad_type = [n for n in given if not isinstance(n, str)]
        if bad_type:
            raise Invalid("tool names must be strings", field="tools")
        unique = list(dict.fromkeys(given))
        unknown = [n for n in unique if n not in self._tools]
        if unknown:
            label = "unknown tool" if len(unknown) == 1 else "unknown tools"
            raise Invalid(f"{label}: {', '.join(unknown)}", field="tools")
        return unique
