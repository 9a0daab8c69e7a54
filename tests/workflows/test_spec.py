"""Workflow specs: parsing, validation (one error, naming the field and the step), the graph, run inputs."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from atom_core.errors import Invalid
from atom_core.workflows import spec as specs
from atom_core.workflows import templates

AGENTS = {"researcher", "writer"}
TOOLS = {"calculator", "datetime_now", "plugin_tool"}  # plugin_tool: allowed, but not in the global registry

RESEARCH_BRIEF = """\
name: research-brief
inputs: {topic: string}
steps:
  - id: research
    agent: researcher            # agent slug in this tenant
    input: "Collect facts about {{ inputs.topic }}"
  - id: outline
    agent: writer
    depends_on: [research]
    input: "Outline using: {{ steps.research.output }}"
  - id: review
    type: approval               # pauses the run until a decision
    depends_on: [outline]
  - id: write
    agent: writer
    depends_on: [review]
    retry: {max_attempts: 3, backoff_s: 2}
    timeout_s: 120
output: "{{ steps.write.output }}"
"""


def check(raw: Any) -> specs.WorkflowSpec:
    return specs.validate(raw, agents=AGENTS, tools=TOOLS)


def rejection(raw: Any) -> Invalid:
    with pytest.raises(Invalid) as caught:
        check(raw)
    return caught.value


def flow(*steps: dict, **fields: Any) -> dict:
    return {"name": "wf", "steps": list(steps), **fields}


def agent(step_id: str, *depends_on: str, **fields: Any) -> dict:
    return {"id": step_id, "agent": "writer", "depends_on": list(depends_on), **fields}


# -------------------------------------------------------------------- parsing


def test_research_brief_in_yaml_and_json() -> None:
    from_yaml = specs.parse(RESEARCH_BRIEF)
    from_json = specs.parse(json.dumps(yaml.safe_load(RESEARCH_BRIEF)))
    assert from_yaml == from_json
    spec = check(from_yaml)
    assert [s.id for s in spec.steps] == ["research", "outline", "review", "write"]
    assert [s.type for s in spec.steps] == ["agent", "agent", "approval", "agent"]
    write = spec.steps[3]
    assert (write.retry.max_attempts, write.retry.backoff_s, write.timeout_s) == (3, 2.0, 120.0)
    assert write.input is None and spec.inputs == {"topic": "string"}


def test_dump_round_trips_and_leaves_out_defaults() -> None:
    spec = check(specs.parse(RESEARCH_BRIEF))
    dumped = specs.dump(spec)
    assert json.loads(json.dumps(dumped)) == dumped
    assert check(specs.parse(json.dumps(dumped))) == spec
    assert dumped["steps"][0] == {
        "id": "research",
        "agent": "researcher",
        "input": "Collect facts about {{ inputs.topic }}",
    }
    assert dumped["steps"][3]["retry"] == {"max_attempts": 3, "backoff_s": 2.0}


def test_every_step_type_round_trips() -> None:
    spec = check(
        flow(
            {"id": "calc", "type": "tool", "tool": "calculator", "args": {"expression": "{{ inputs.n }} * 2"}},
            {"id": "big", "type": "condition", "when": "steps.calc.output.result > 10", "depends_on": ["calc"]},
            {
                "id": "fan",
                "type": "map",
                "agent": "writer",
                "over": "range(3)",
                "max_parallel": 2,
                "depends_on": ["big"],
            },
            {"id": "ok", "type": "approval", "depends_on": ["fan"], "description": "a person looks"},
            inputs={"n": "integer"},
            output="{{ steps.fan.output | join(', ') }}",
        )
    )
    assert check(specs.parse(specs.dump(spec))) == spec


def test_parse_accepts_bytes_and_mappings() -> None:
    assert specs.parse(RESEARCH_BRIEF.encode()) == specs.parse(RESEARCH_BRIEF)
    raw = {"name": "x", "steps": []}
    assert specs.parse(raw) is raw


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("[1, 2]", "must be a mapping"),
        ("just text", "must be a mapping"),
        ("", "must be a mapping"),
        (42, "JSON or YAML text, or an object"),
        ("name: x\nsteps:\n  - id: [a\n", "(line 4)"),
        ('{"name": "x",', "not valid YAML or JSON"),
        ("a: &big [1, 2]\nb: *big\n", "aliases (*name) are not supported (line 2)"),
        (b"name: \xff", "must be UTF-8"),
        ("[" * 100_000, "nested too deeply"),
        ("x" * (specs.SPEC_MAX_BYTES + 1), "larger than 256 KB"),
        ({"name": "x" * (specs.SPEC_MAX_BYTES + 1)}, "larger than 256 KB"),
    ],
)
def test_parse_rejections(source: Any, message: str) -> None:
    with pytest.raises(Invalid) as caught:
        specs.parse(source)
    assert caught.value.field == "spec"
    assert message in caught.value.message


# ----------------------------------------------------------------- validation

REJECTIONS = [
    # (spec, field, message)
    ([], "spec", "must be a mapping"),
    ({"steps": [agent("a")]}, "spec.name", "name: required"),
    (flow(agent("a"), colour="red"), "spec.colour", "colour: unknown field"),
    (flow(), "spec.steps", "steps: must have at least 1 item"),
    (flow(*(agent(f"s{i}") for i in range(201))), "spec.steps", "at most 200 items"),
    (flow(agent("a"), inputs={"bad-name": "string"}), "spec.inputs.bad-name", "must start with a letter"),
    (flow(agent("a"), inputs={"topic": "text"}), "spec.inputs.topic", "must be 'string', 'number'"),
    (
        flow(agent("a"), agent("outline", depnds_on=["a"])),
        "spec.steps[1].depnds_on",
        "step 'outline': depnds_on: unknown field (did you mean 'depends_on'?)",
    ),
    (
        flow(agent("a", retry={"max_attempts": 11})),
        "spec.steps[0].retry.max_attempts",
        "step 'a': retry.max_attempts: must be less than or equal to 10",
    ),
    (flow(agent("a", retry={"tries": 2})), "spec.steps[0].retry.tries", "step 'a': retry.tries: unknown field"),
    (flow(agent("a", retry=3)), "spec.steps[0].retry", "step 'a': retry: must be a mapping"),
    (flow(agent("a", timeout_s=0)), "spec.steps[0].timeout_s", "step 'a': timeout_s: must be greater than 0"),
    (flow(agent("a", max_attempts="3")), "spec.steps[0].max_attempts", "unknown field"),
    (flow(agent("a", type="agnet")), "spec.steps[0].type", "step 'a': type: must be 'agent', 'tool'"),
    (flow(agent("my-step")), "spec.steps[0].id", "step 'my-step': id: must start with a letter"),
    (flow({"agent": "writer"}), "spec.steps[0].id", "steps[0]: id: required"),
    (flow(agent("a"), "oops"), "spec.steps[1]", "steps[1]: must be a mapping"),
    (flow(agent("a", timeout_s="10")), "spec.steps[0].timeout_s", "must be a valid number"),
    (flow(agent("a"), agent("a")), "spec.steps[1].id", "step 'a': id: duplicate step id (also steps[0])"),
    # depends_on
    (
        flow(agent("research"), agent("outline", "reserch")),
        "spec.steps[1].depends_on",
        "step 'outline': depends_on: unknown step 'reserch' (did you mean 'research'?)",
    ),
    (
        flow(agent("a", "a")),
        "spec.steps[0].depends_on",
        "step 'a': depends_on: a step cannot depend on itself (cycle: a -> a)",
    ),
    (flow(agent("a", "b"), agent("b", "a")), "spec.steps[0].depends_on", "step 'a': depends_on: cycle: a -> b -> a"),
    (
        flow(agent("a", "c"), agent("b", "a"), agent("c", "b")),
        "spec.steps[0].depends_on",
        "step 'a': depends_on: cycle: a -> c -> b -> a",
    ),
    (
        flow(agent("x"), agent("b", "x", "c"), agent("c", "b")),
        "spec.steps[1].depends_on",
        "step 'b': depends_on: cycle: b -> c -> b",
    ),
    (flow(agent("a"), agent("b", "a", "a")), "spec.steps[1].depends_on", "step 'b': depends_on: 'a' is listed twice"),
    # fields by step type
    (
        flow({"id": "review", "type": "approval", "agent": "writer"}),
        "spec.steps[0].agent",
        "step 'review': agent: not allowed in approval steps",
    ),
    (flow({"id": "a"}), "spec.steps[0].agent", "step 'a': agent: required in agent steps"),
    (flow({"id": "a", "agent": "  "}), "spec.steps[0].agent", "step 'a': agent: required in agent steps"),
    (
        flow({"id": "a", "agent": "writer", "when": "true"}),
        "spec.steps[0].when",
        "step 'a': when: not allowed in agent steps",
    ),
    (
        flow({"id": "a", "agent": "writer", "max_parallel": 2}),
        "spec.steps[0].max_parallel",
        "not allowed in agent steps",
    ),
    (flow({"id": "c", "type": "condition"}), "spec.steps[0].when", "step 'c': when: required in condition steps"),
    (
        flow({"id": "m", "type": "map", "agent": "writer"}),
        "spec.steps[0].over",
        "step 'm': over: required in map steps",
    ),
    (flow({"id": "m", "type": "map", "over": "[1]"}), "spec.steps[0].agent", "step 'm': agent: required in map steps"),
    (
        flow({"id": "m", "type": "map", "agent": "writer", "over": "[1]", "max_parallel": 65}),
        "spec.steps[0].max_parallel",
        "less than or equal to 64",
    ),
    (flow({"id": "t", "type": "tool"}), "spec.steps[0].tool", "step 't': tool: required in tool steps"),
    (
        flow({"id": "t", "type": "tool", "tool": "datetime_now", "input": "hi"}),
        "spec.steps[0].input",
        "step 't': input: not allowed in tool steps",
    ),
    (
        flow({"id": "a", "agent": "writer", "args": {"x": 1}}),
        "spec.steps[0].args",
        "step 'a': args: not allowed in agent steps",
    ),
    # agents and tools
    (
        flow(agent("a", agent="writr")),
        "spec.steps[0].agent",
        "step 'a': agent: unknown agent 'writr' (did you mean 'writer'?)",
    ),
    (
        flow({"id": "t", "type": "tool", "tool": "http_get", "args": {"url": "x"}}),
        "spec.steps[0].tool",
        "step 't': tool: unknown tool 'http_get'",
    ),
    (
        flow({"id": "t", "type": "tool", "tool": "calculator", "args": {"expr": "1"}}),
        "spec.steps[0].args.expr",
        "step 't': args.expr: calculator has no argument 'expr'",
    ),
    (
        flow({"id": "t", "type": "tool", "tool": "calculator"}),
        "spec.steps[0].args",
        "step 't': args: missing argument 'expression' of calculator",
    ),
    # templates
    (
        flow(agent("a", input="Hello {{ inputs.topic")),
        "spec.steps[0].input",
        "step 'a': input: unexpected end of template",
    ),
    (flow(agent("a", input="ok\n{% for %}")), "spec.steps[0].input", "(line 2)"),
    (flow(agent("a", input="{{ x | nofilter }}")), "spec.steps[0].input", "No filter named 'nofilter'"),
    (
        flow({"id": "t", "type": "tool", "tool": "calculator", "args": {"expression": "{{ 1 +"}}),
        "spec.steps[0].args.expression",
        "step 't': args.expression: unexpected",
    ),
    (
        flow({"id": "t", "type": "tool", "tool": "plugin_tool", "args": {"a": {"b": ["ok", "{% if %}"]}}}),
        "spec.steps[0].args.a.b[1]",
        "step 't': args.a.b[1]:",
    ),
    (
        flow({"id": "c", "type": "condition", "when": "steps.x.output >"}),
        "spec.steps[0].when",
        "step 'c': when: unexpected",
    ),
    (
        flow({"id": "c", "type": "condition", "when": "1 2"}),
        "spec.steps[0].when",
        "unexpected text after the expression",
    ),
    (flow({"id": "m", "type": "map", "agent": "writer", "over": "[1,"}), "spec.steps[0].over", "step 'm': over:"),
    (flow(agent("a"), output="{{ steps.a.output "), "spec.output", "output: unexpected end of template"),
    # what templates may use
    (
        flow(agent("a", input="{{ steps.b.output }}"), agent("b")),
        "spec.steps[0].input",
        "step 'a': input: uses steps.b, which is not upstream of this step (add 'b' to depends_on)",
    ),
    (
        flow(agent("a"), agent("b", "a"), agent("c", "a", input="{{ steps['b'].output }}")),
        "spec.steps[2].input",
        "uses steps.b, which is not upstream",
    ),
    (
        flow(agent("a", input="{{ steps.a.output }}")),
        "spec.steps[0].input",
        "step 'a': input: a step cannot use its own output (steps.a)",
    ),
    (flow(agent("a", input="{{ steps.nope.output }}")), "spec.steps[0].input", "step 'a': input: unknown step 'nope'"),
    (
        flow({"id": "c", "type": "condition", "when": "steps.b.output"}, agent("b")),
        "spec.steps[0].when",
        "step 'c': when: uses steps.b",
    ),
    (flow(agent("a"), output="{{ steps.wirte.output }}"), "spec.output", "output: unknown step 'wirte'"),
    (
        flow(agent("a", input="{{ item }}")),
        "spec.steps[0].input",
        "step 'a': input: 'item' is only available in the input of a map step",
    ),
    (
        flow({"id": "m", "type": "map", "agent": "writer", "over": "range(index)"}),
        "spec.steps[0].over",
        "'index' is only available in the input of a map step",
    ),
    (flow(agent("a"), output="{{ item }}"), "spec.output", "output: 'item' is only available"),
    (
        flow(agent("a", input="{{ topic }}")),
        "spec.steps[0].input",
        "step 'a': input: unknown name 'topic' (templates can use inputs, steps)",
    ),
    (flow(agent("a", input="{{ namespace() }}")), "spec.steps[0].input", "unknown name 'namespace'"),
    (
        flow(agent("a", input="{{ inputs.topc }}"), inputs={"topic": "string"}),
        "spec.steps[0].input",
        "step 'a': input: unknown input 'topc' (did you mean 'topic'?)",
    ),
    (
        flow(agent("a", input="{{ inputs['n'] }}"), inputs={"topic": "string"}),
        "spec.steps[0].input",
        "unknown input 'n'",
    ),
]


@pytest.mark.parametrize(("raw", "field", "message"), REJECTIONS)
def test_rejections_name_the_field_and_the_step(raw: Any, field: str, message: str) -> None:
    error = rejection(raw)
    assert error.field == field
    assert message in error.message


def test_the_first_problem_is_reported() -> None:
    error = rejection(flow(agent("a", agent="nobody"), agent("b", "zzz")))
    assert error.field == "spec.steps[0].agent"


@pytest.mark.parametrize(
    "raw",
    [
        flow(agent("a"), agent("b", "a"), agent("c", "b", input="{{ steps.a.output }} {{ steps.b.output }}")),
        flow(agent("a"), agent("b"), output="{{ steps.a.output }}{{ steps.b.output }}"),  # output: any step
        flow(agent("a", input="{{ inputs.anything }}")),  # no inputs declared: any input
        flow({"id": "m", "type": "map", "agent": "writer", "over": "inputs.xs", "input": "{{ index }}: {{ item }}"}),
        flow({"id": "t", "type": "tool", "tool": "plugin_tool", "args": {"whatever": 1}}),  # not in the registry
        flow({"id": "t", "type": "tool", "tool": "datetime_now"}),  # optional arguments only
        flow(agent("items"), agent("b", "items", input="{{ steps.items.output }}")),
        flow(agent("a", input="{{ steps | length }}")),  # the whole mapping, no step in particular
    ],
)
def test_valid_specs(raw: dict) -> None:
    check(raw)


def test_validated_templates_render() -> None:
    spec = check(flow(agent("a"), agent("b", "a", input="From {{ steps.a.output }} on {{ inputs.topic }}")))
    context = {"inputs": {"topic": "cats"}, "steps": {"a": {"output": "notes", "status": "succeeded"}}}
    assert templates.render(spec.steps[1].input or "", context) == "From notes on cats"


def test_default_input() -> None:
    spec = check(
        flow(agent("a"), agent("b"), agent("c", "a", "b"), {"id": "m", "type": "map", "agent": "writer", "over": "[1]"})
    )
    a, _, c, m = spec.steps
    context = {
        "inputs": {"topic": "cats"},
        "steps": {"a": {"output": "text", "status": "succeeded"}, "b": {"output": {"k": 1}, "status": "succeeded"}},
    }
    assert templates.render(specs.default_input(a), context) == '{"topic": "cats"}'
    assert templates.render(specs.default_input(c), context) == 'text\n\n{"k": 1}'
    assert templates.render(specs.default_input(m), {**context, "item": "x", "index": 0}) == "x"


def test_specs_are_immutable() -> None:
    spec = check(specs.parse(RESEARCH_BRIEF))
    with pytest.raises(ValueError, match="frozen"):
        spec.steps[0].agent = "writer"  # type: ignore[misc]


# ------------------------------------------------------------------ the graph


def test_graph_helpers() -> None:
    spec = check(flow(agent("x"), agent("y", "z"), agent("z"), agent("w", "x"), agent("v", "y", "w")))
    assert specs.dependents(spec) == {"x": ["w"], "y": ["v"], "z": ["y"], "w": ["v"], "v": []}
    assert specs.upstream(spec) == {"x": set(), "y": {"z"}, "z": set(), "w": {"x"}, "v": {"x", "y", "z", "w"}}
    # Among steps ready together, spec order: y (listed second) runs before w once z is done.
    assert specs.topological_order(spec) == ["x", "z", "y", "w", "v"]


def test_topological_order_keeps_spec_order_for_independent_steps() -> None:
    ids = ["c", "a", "b", "e", "d"]
    assert specs.topological_order(check(flow(*(agent(i) for i in ids)))) == ids


# ----------------------------------------------------------------- run inputs

TYPED = check(
    flow(agent("a"), inputs={"s": "string", "n": "number", "i": "integer", "b": "boolean", "l": "list", "o": "object"})
)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {"s": "hi", "n": 2.5, "i": 3, "b": True, "l": [1], "o": {"k": 1}},
            {"s": "hi", "n": 2.5, "i": 3, "b": True, "l": [1], "o": {"k": 1}},
        ),
        (
            {"s": " 7 ", "n": "2.5", "i": " 3", "b": "yes", "l": '["a", 1]', "o": '{"k": 1}'},
            {"s": " 7 ", "n": 2.5, "i": 3, "b": True, "l": ["a", 1], "o": {"k": 1}},
        ),
        (
            {"s": "", "n": "-4", "i": 3.0, "b": "False", "l": "[]", "o": "{}"},
            {"s": "", "n": -4, "i": 3, "b": False, "l": [], "o": {}},
        ),
        (
            {"s": "x", "n": "1e3", "i": "-12", "b": "0", "l": [], "o": {}},
            {"s": "x", "n": 1000.0, "i": -12, "b": False, "l": [], "o": {}},
        ),
    ],
)
def test_run_input_is_converted(values: dict, expected: dict) -> None:
    assert specs.check_run_input(TYPED, values) == expected


GOOD = {"s": "x", "n": 1, "i": 1, "b": True, "l": [], "o": {}}


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ("text", "input", "must be an object"),
        ([1], "input", "must be an object"),
        (None, "input.s", "missing input 's' (string)"),
        ({k: v for k, v in GOOD.items() if k != "o"}, "input.o", "missing input 'o' (object)"),
        (GOOD | {"extra": 1}, "input.extra", "unknown input 'extra'"),
        (GOOD | {"s": 5}, "input.s", "input 's' must be text"),
        (GOOD | {"n": "abc"}, "input.n", "input 'n' must be a number"),
        (GOOD | {"n": "nan"}, "input.n", "must be a number"),
        (GOOD | {"n": "1e400"}, "input.n", "must be a number"),
        (GOOD | {"n": True}, "input.n", "must be a number"),
        (GOOD | {"n": float("inf")}, "input.n", "must be a number"),
        (GOOD | {"i": "3.5"}, "input.i", "input 'i' must be a whole number"),
        (GOOD | {"i": 3.5}, "input.i", "must be a whole number"),
        (GOOD | {"i": False}, "input.i", "must be a whole number"),
        (GOOD | {"b": "maybe"}, "input.b", "input 'b' must be true or false"),
        (GOOD | {"b": 1}, "input.b", "must be true or false"),
        (GOOD | {"l": "[1,"}, "input.l", "input 'l' must be a list"),
        (GOOD | {"l": '{"a": 1}'}, "input.l", "must be a list"),
        (GOOD | {"o": "[]"}, "input.o", "input 'o' must be an object"),
    ],
)
def test_run_input_rejections(values: Any, field: str, message: str) -> None:
    with pytest.raises(Invalid) as caught:
        specs.check_run_input(TYPED, values)
    assert caught.value.field == field
    assert message in caught.value.message


def test_run_input_without_declared_inputs_is_free_form() -> None:
    spec = check(flow(agent("a")))
    assert specs.check_run_input(spec, {"anything": [1]}) == {"anything": [1]}
    assert specs.check_run_input(spec, None) == {}
