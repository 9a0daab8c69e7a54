"""Workflow specs: parse JSON or YAML, validate them whole, and answer questions about the step graph.

A spec is checked completely when it is saved, so that a run never fails on something its author
could have been told: each problem is one `Invalid` whose field is a path into the spec
(`spec.steps[2].depends_on`) and whose message names the step (`step 'outline': depends_on: ...`).
"""

from __future__ import annotations

import difflib
import heapq
import json
import math
import re
from collections.abc import Collection, Iterator
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from atom_core.agents.tools.builtins import TOOLS
from atom_core.errors import Invalid
from atom_core.validation import check_json, check_text
from atom_core.workflows import templates

SPEC_MAX_BYTES = 256 * 1024
STEP_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"  # usable as `steps.<id>` in a template

Identifier = Annotated[str, StringConstraints(pattern=STEP_ID_PATTERN)]
StepType = Literal["agent", "tool", "approval", "condition", "map"]
InputType = Literal["string", "number", "integer", "boolean", "list", "object"]


class _Model(BaseModel):
    # strict: a spec says what it means ("3" is not 3); frozen: one parsed spec is shared by many runs.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class RetryPolicy(_Model):
    max_attempts: int = Field(1, ge=1, le=10)
    backoff_s: float = Field(1.0, ge=0, le=3600)


class StepSpec(_Model):
    id: Identifier
    type: StepType = "agent"
    agent: str | None = None  # agent slug: agent and map steps
    input: str | None = None  # template; None means `default_input(step)`
    tool: str | None = None
    args: dict[str, Any] = Field(default_factory=dict)  # every string in it, at any depth, is a template
    when: str | None = None  # condition steps: an expression
    over: str | None = None  # map steps: an expression giving the list
    max_parallel: int | None = Field(None, ge=1, le=64)  # map steps; None: the executor's limit
    depends_on: list[str] = Field(default_factory=list)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    timeout_s: float | None = Field(None, gt=0, le=86400)
    description: str = Field("", max_length=2000)


class WorkflowSpec(_Model):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    description: str = Field("", max_length=2000)
    inputs: dict[Identifier, InputType] = Field(default_factory=dict)  # none declared: any object is accepted
    steps: list[StepSpec] = Field(min_length=1, max_length=200)
    output: str | None = None  # template; may use any step


# Fields that depend on the step type: required ones, then optional ones. Any other is refused.
_TYPED_FIELDS = ("agent", "input", "tool", "args", "when", "over", "max_parallel")
_TYPE_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    "agent": ({"agent"}, {"input"}),
    "map": ({"agent", "over"}, {"input", "max_parallel"}),
    "tool": ({"tool"}, {"args"}),
    "approval": (set(), set()),
    "condition": ({"when"}, set()),
}
_ALL_FIELDS = sorted(set(WorkflowSpec.model_fields) | set(StepSpec.model_fields) | set(RetryPolicy.model_fields))
_TEMPLATE_NAMES = {"inputs", "steps"}
_MAP_NAMES = {"item", "index"}


# ------------------------------------------------------------------ parsing


class _Loader(yaml.SafeLoader):
    """SafeLoader without aliases: with `*name` a few lines expand into billions of nodes."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not supported", mark)
        return super().compose_node(parent, index)


def parse(source: str | bytes | dict) -> dict:
    """The spec as a mapping, from JSON or YAML text or an already parsed mapping."""
    if isinstance(source, str | bytes):
        text = _text(source)
        if len(text.encode()) > SPEC_MAX_BYTES:
            raise Invalid(f"the spec is larger than {SPEC_MAX_BYTES // 1024} KB", field="spec")
        source = _load(text)
    elif not isinstance(source, dict):
        raise Invalid("the spec must be JSON or YAML text, or an object", field="spec")
    if not isinstance(source, dict):
        raise Invalid("the spec must be a mapping with a name and steps", field="spec")
    # Every spec, whatever its form, is JSON that can be stored and read back.
    return check_json(source, "spec", max_bytes=SPEC_MAX_BYTES)


def _text(source: str | bytes) -> str:
    try:
        text = source.decode("utf-8") if isinstance(source, bytes) else source
    except UnicodeDecodeError:
        raise Invalid("the spec must be UTF-8 text", field="spec") from None
    return check_text(text, "spec")


def _load(text: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise Invalid("the spec is nested too deeply", field="spec") from None
    except ValueError:
        pass  # not JSON: YAML then
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader, minus aliases
    except yaml.MarkedYAMLError as exc:
        line = f" (line {exc.problem_mark.line + 1})" if exc.problem_mark else ""
        raise Invalid(f"the spec is not valid YAML or JSON: {exc.problem}{line}", field="spec") from None
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: e.g. an integer of 5000 digits
        raise Invalid(f"the spec is not valid YAML or JSON: {exc}", field="spec") from None
    except RecursionError:
        raise Invalid("the spec is nested too deeply", field="spec") from None


def dump(spec: WorkflowSpec) -> dict:
    """The canonical, JSON-able form that is stored; `validate(parse(dump(spec)))` gives `spec` back."""
    return spec.model_dump(mode="json", exclude_defaults=True)


def default_input(step: StepSpec) -> str:
    """The input template of an agent or map step that sets none.

    A map step gets its item; a step with dependencies gets their outputs, one paragraph each (JSON
    for anything that is not text); a first step gets the run's inputs as JSON.
    """
    if step.type == "map":
        return "{{ item }}"
    if step.depends_on:
        outputs = (f"steps.{dep}.output" for dep in step.depends_on)
        return "\n\n".join(f"{{{{ {out} if {out} is string else {out} | tojson }}}}" for out in outputs)
    return "{{ inputs | tojson }}"


# --------------------------------------------------------------- validation


def validate(raw: Any, *, agents: Collection[str], tools: Collection[str]) -> WorkflowSpec:
    """The spec, checked against the tenant's agent slugs and tool names; `Invalid` for the first problem."""
    if not isinstance(raw, dict):
        raise Invalid("the spec must be a mapping with a name and steps", field="spec")
    try:
        spec = WorkflowSpec.model_validate(raw)
    except ValidationError as exc:
        raise _from_pydantic(exc, raw) from None
    ids = _check_ids(spec)
    for index, step in enumerate(spec.steps):
        _check_fields(index, step)
        _check_names(index, step, agents, tools)
        _check_depends_on(index, step, ids)
    _check_acyclic(spec)
    above = upstream(spec)
    for index, step in enumerate(spec.steps):
        for where, text, expression, names in _templates(step):
            problem = _template_problem(spec, text, expression=expression, names=names, own=step.id, allowed=above)
            if problem:
                raise _step_error(index, step.id, where, problem)
    if spec.output is not None:
        problem = _template_problem(spec, spec.output, expression=False, names=_TEMPLATE_NAMES)
        if problem:
            raise Invalid(f"output: {problem}", field="spec.output")
    return spec


def _step_error(index: int, step_id: str | None, where: str, message: str) -> Invalid:
    label = f"step '{step_id}'" if step_id else f"steps[{index}]"
    field = f"spec.steps[{index}]" + (f".{where}" if where else "")
    return Invalid(f"{label}: {where}: {message}" if where else f"{label}: {message}", field=field)


def _unknown(kind: str, name: str, known: Collection[str]) -> str:
    return f"unknown {kind} '{name}'{_hint(name, known)}"


def _hint(name: str, known: Collection[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


_PYDANTIC_MESSAGES = {
    "missing": "required",
    "model_type": "must be a mapping",
    "dict_type": "must be a mapping",
    "list_type": "must be a list",
    "string_pattern_mismatch": "must start with a letter or _ and have only letters, digits and _ (at most 63)",
}


def _from_pydantic(exc: ValidationError, raw: dict) -> Invalid:
    """The first pydantic error, as a path into the spec and a message naming the step."""
    error = exc.errors()[0]
    loc = [part for part in error["loc"] if part != "[key]"]  # "[key]": the error is in a mapping's key
    message = _pydantic_message(error["type"], error["msg"], loc)
    if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
        step = raw["steps"][loc[1]]
        step_id = step.get("id") if isinstance(step, dict) and isinstance(step.get("id"), str) else None
        return _step_error(loc[1], step_id, _dotted(loc[2:]), message)
    return Invalid(f"{_dotted(loc)}: {message}" if loc else message, field=f"spec.{_dotted(loc)}".rstrip("."))


def _pydantic_message(kind: str, text: str, loc: list[str | int]) -> str:
    if kind == "extra_forbidden":
        return "unknown field" + _hint(str(loc[-1]), _ALL_FIELDS)
    if kind in _PYDANTIC_MESSAGES:
        return _PYDANTIC_MESSAGES[kind]
    return re.sub(r"^\w+ should\b", "must", text).replace(" after validation", "")  # "Input should be" -> "must be"


def _dotted(loc: list[str | int]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")


def _check_ids(spec: WorkflowSpec) -> set[str]:
    first: dict[str, int] = {}
    for index, step in enumerate(spec.steps):
        if step.id in first:
            raise _step_error(index, step.id, "id", f"duplicate step id (also steps[{first[step.id]}])")
        first[step.id] = index
    return set(first)


def _check_fields(index: int, step: StepSpec) -> None:
    required, optional = _TYPE_FIELDS[step.type]
    for name in _TYPED_FIELDS:
        value = getattr(step, name)
        present = bool(value.strip()) if isinstance(value, str) else value not in (None, {})
        if name in required and not present:
            raise _step_error(index, step.id, name, f"required in {step.type} steps")
        if present and name not in required | optional:
            raise _step_error(index, step.id, name, f"not allowed in {step.type} steps")


def _check_names(index: int, step: StepSpec, agents: Collection[str], tools: Collection[str]) -> None:
    if step.agent is not None and step.agent not in agents:
        raise _step_error(index, step.id, "agent", _unknown("agent", step.agent, agents))
    if step.tool is None:
        return
    if step.tool not in tools:
        raise _step_error(index, step.id, "tool", _unknown("tool", step.tool, tools))
    tool = TOOLS.get(step.tool)
    if tool is None:  # known to the caller but not to this registry: its arguments are checked when it runs
        return
    schema = tool.parameters_schema()
    for name in step.args:
        if name not in schema["properties"]:
            message = f"{step.tool} has no argument '{name}'{_hint(name, schema['properties'])}"
            raise _step_error(index, step.id, f"args.{name}", message)
    for name in schema.get("required", []):
        if name not in step.args:
            raise _step_error(index, step.id, "args", f"missing argument '{name}' of {step.tool}")


def _check_depends_on(index: int, step: StepSpec, ids: set[str]) -> None:
    for position, dep in enumerate(step.depends_on):
        if dep == step.id:
            problem = f"a step cannot depend on itself (cycle: {dep} -> {dep})"
        elif dep not in ids:
            problem = _unknown("step", dep, ids)
        elif dep in step.depends_on[:position]:
            problem = f"'{dep}' is listed twice"
        else:
            continue
        raise _step_error(index, step.id, "depends_on", problem)


def _check_acyclic(spec: WorkflowSpec) -> None:
    cycle = _cycle(spec)
    if cycle:
        index = next(i for i, step in enumerate(spec.steps) if step.id == cycle[0])
        raise _step_error(index, cycle[0], "depends_on", "cycle: " + " -> ".join(cycle))


def _cycle(spec: WorkflowSpec) -> list[str] | None:
    """A dependency cycle as [a, b, ..., a] (a depends on b, ...), or None."""
    depends_on = {step.id: step.depends_on for step in spec.steps}
    done: set[str] = set()
    path: list[str] = []

    def visit(step_id: str) -> list[str] | None:
        if step_id in path:
            return [*path[path.index(step_id) :], step_id]
        if step_id in done:
            return None
        path.append(step_id)
        for dep in depends_on[step_id]:
            if cycle := visit(dep):
                return cycle
        path.pop()
        done.add(step_id)
        return None

    return next((cycle for step in spec.steps if (cycle := visit(step.id))), None)


def _templates(step: StepSpec) -> Iterator[tuple[str, str, bool, set[str]]]:
    """(field, text, is an expression, names it may use) of each template of a step."""
    if step.input is not None:
        yield "input", step.input, False, _TEMPLATE_NAMES | (_MAP_NAMES if step.type == "map" else set())
    if step.when is not None:
        yield "when", step.when, True, _TEMPLATE_NAMES
    if step.over is not None:
        yield "over", step.over, True, _TEMPLATE_NAMES
    for where, text in _strings(step.args, "args"):
        yield where, text, False, _TEMPLATE_NAMES


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{where}.{key}")
    elif isinstance(value, list):
        for position, item in enumerate(value):
            yield from _strings(item, f"{where}[{position}]")


def _template_problem(
    spec: WorkflowSpec,
    text: str,
    *,
    expression: bool,
    names: set[str],
    own: str | None = None,
    allowed: dict[str, set[str]] | None = None,
) -> str | None:
    """What is wrong with a template of step `own` (None: the workflow's output), or None."""
    try:
        (templates.check_expression if expression else templates.check_template)(text)
        used = templates.referenced_names(text, expression=expression)
        step_refs = templates.referenced_steps(text, expression=expression)
        input_refs = templates.referenced_keys(text, "inputs", expression=expression)
    except templates.TemplateError as exc:
        return exc.message
    for name in sorted(used - names):
        if name in _MAP_NAMES:
            return f"'{name}' is only available in the input of a map step"
        return f"unknown name '{name}' (templates can use {', '.join(sorted(names))})"
    known = [step.id for step in spec.steps]
    for ref in sorted(step_refs):
        if ref not in known:
            return _unknown("step", ref, known)
        if ref == own:
            return f"a step cannot use its own output (steps.{ref})"
        if own is not None and allowed is not None and ref not in allowed[own]:
            return f"uses steps.{ref}, which is not upstream of this step (add '{ref}' to depends_on)"
    if spec.inputs:
        for ref in sorted(input_refs - set(spec.inputs)):
            return _unknown("input", ref, spec.inputs)
    return None


# ---------------------------------------------------------------- the graph


def dependents(spec: WorkflowSpec) -> dict[str, list[str]]:
    """For each step, the steps that depend on it directly, in spec order."""
    following: dict[str, list[str]] = {step.id: [] for step in spec.steps}
    for step in spec.steps:
        for dep in step.depends_on:
            following[dep].append(step.id)
    return following


def topological_order(spec: WorkflowSpec) -> list[str]:
    """Step ids, each after its dependencies; among steps ready at the same time, in spec order."""
    position = {step.id: index for index, step in enumerate(spec.steps)}
    waiting = {step.id: len(step.depends_on) for step in spec.steps}
    following = dependents(spec)
    ready = [index for index, step in enumerate(spec.steps) if not step.depends_on]
    order: list[str] = []
    while ready:
        step_id = spec.steps[heapq.heappop(ready)].id
        order.append(step_id)
        for later in following[step_id]:
            waiting[later] -= 1
            if not waiting[later]:
                heapq.heappush(ready, position[later])
    if len(order) != len(spec.steps):
        raise ValueError("the steps have a dependency cycle")  # validate() refuses such specs
    return order


def upstream(spec: WorkflowSpec) -> dict[str, set[str]]:
    """For each step, every step it depends on, directly or through others."""
    depends_on = {step.id: step.depends_on for step in spec.steps}
    above: dict[str, set[str]] = {}
    for step_id in topological_order(spec):
        above[step_id] = set(depends_on[step_id]).union(*(above[dep] for dep in depends_on[step_id]))
    return {step.id: above[step.id] for step in spec.steps}


# --------------------------------------------------------------- run inputs

_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}
_INTEGER = re.compile(r"[-+]?\d{1,18}")
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_EXPECTED = {
    "string": "text",
    "number": "a number",
    "integer": "a whole number",
    "boolean": "true or false",
    "list": "a list (a JSON array)",
    "object": "an object (a JSON object)",
}


def check_run_input(spec: WorkflowSpec, values: Any) -> dict[str, Any]:
    """A run's input checked against the declared inputs, with text converted (the CLI sends text).

    Every declared input is required and no other is accepted; a spec that declares none takes any object.
    """
    values = {} if values is None else values
    if not isinstance(values, dict):
        raise Invalid("the input must be an object of named values", field="input")
    if not spec.inputs:
        return check_json(dict(values), "input")
    for name in values:
        if name not in spec.inputs:
            raise Invalid(_unknown("input", str(name), spec.inputs), field=f"input.{name}")
    checked: dict[str, Any] = {}
    for name, kind in spec.inputs.items():
        if name not in values:
            raise Invalid(f"missing input '{name}' ({kind})", field=f"input.{name}")
        checked[name] = _converted(name, kind, values[name])
    return check_json(checked, "input")  # what text became (a CLI value) is checked too


def _converted(name: str, kind: str, value: Any) -> Any:
    converted = _CONVERTERS[kind](value)
    if converted is _FAILED:
        raise Invalid(f"input '{name}' must be {_EXPECTED[kind]}", field=f"input.{name}")
    return converted


_FAILED = object()


def _as_string(value: Any) -> Any:
    return value if isinstance(value, str) else _FAILED


def _as_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    word = value.strip().lower() if isinstance(value, str) else None
    return word in _TRUE if word in _TRUE | _FALSE else _FAILED


def _as_integer(value: Any) -> Any:
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else _FAILED


def _as_number(value: Any) -> Any:
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        value = _as_integer(value) if _INTEGER.fullmatch(value.strip()) else float(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else _FAILED
    return value if isinstance(value, int) and not isinstance(value, bool) else _FAILED


def _as_json(wanted: type) -> Any:
    def convert(value: Any) -> Any:
        if isinstance(value, str):  # the CLI passes `tags=["a", "b"]` as text
            try:
                value = json.loads(value)
            except (ValueError, RecursionError):
                return _FAILED
        return value if isinstance(value, wanted) else _FAILED

    return convert


_CONVERTERS = {
    "string": _as_string,
    "number": _as_number,
    "integer": _as_integer,
    "boolean": _as_boolean,
    "list": _as_json(list),
    "object": _as_json(dict),
}
