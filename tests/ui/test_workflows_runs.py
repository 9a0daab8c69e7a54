"""The workflows and runs pages without a browser: the graph layout, the view
models and formatting, and the service calls the pages make, on both backends."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from atom_core.agents import marketplace
from atom_core.context import Ctx
from atom_core.errors import Invalid, NotFound
from atom_core.seed import DEMO_WORKFLOWS
from atom_core.tenancy import service as tenancy
from atom_core.workflows import executors
from atom_core.workflows import service as workflows
from atom_core.workflows import spec as specs
from atom_core.workflows.models import StepRun, WorkflowRun
from atom_ui.components import dag_layout, formatting
from atom_ui.components import workflow_format as fmt
from atom_ui.states import paging
from atom_ui.states import runs as run_states
from atom_ui.states import workflows as workflow_states
from tests.conftest import PASSWORD

RESEARCH_BRIEF = (DEMO_WORKFLOWS / "research-brief.yaml").read_text()


# ----------------------------------------------------------------- the graph


def _nodes(*steps: tuple[str, list[str]]) -> list[dag_layout.StepNode]:
    return [dag_layout.StepNode(sid, depends_on=tuple(deps), index=i) for i, (sid, deps) in enumerate(steps)]


def test_layers_follow_topological_depth() -> None:
    steps = _nodes(("a", []), ("b", ["a"]), ("c", ["a"]), ("d", ["b", "c"]), ("e", []))
    assert dag_layout.depths(steps) == {"a": 0, "b": 1, "c": 1, "d": 2, "e": 0}
    placed = dag_layout.positions(steps)
    assert placed["d"][0] == 2 * dag_layout.COLUMN_GAP
    # A column is centred on y=0 and its members keep spec order.
    assert placed["b"][1] == -placed["c"][1] < 0
    assert placed["a"][1] < placed["e"][1]
    # Top to bottom (the editor's narrow panel): layers become rows.
    down = dag_layout.positions(steps, "TB")
    assert down["d"] == (0, 2 * dag_layout.LAYER_GAP_TB)
    assert down["b"][0] == -down["c"][0] < 0
    node = dag_layout.graph(steps, direction="TB")[0][0]
    assert (node["sourcePosition"], node["targetPosition"]) == ("bottom", "top")


def test_layout_tolerates_cycles_unknown_and_self_dependencies() -> None:
    steps = _nodes(("a", ["c"]), ("b", ["a"]), ("c", ["b"]), ("d", ["nope", "d"]))
    depth = dag_layout.depths(steps)
    assert set(depth) == {"a", "b", "c", "d"}
    assert depth["d"] == 0
    assert sorted(depth[s] for s in "abc") == [0, 1, 2]


def test_a_long_chain_lays_out_without_deep_recursion() -> None:
    steps = _nodes(*[(f"s{i}", [f"s{i - 1}"] if i else []) for i in range(200)])
    assert dag_layout.depths(steps)["s199"] == 199


def test_graph_nodes_and_edges_for_a_run() -> None:
    spec = specs.parse(RESEARCH_BRIEF)
    steps = dag_layout.steps_from_spec(spec)
    assert [(s.id, s.type, s.detail) for s in steps] == [
        ("research", "agent", "data-analyst"),
        ("outline", "agent", "meeting-facilitator"),
        ("review", "approval", ""),
        ("write", "agent", "data-analyst"),
    ]
    statuses = {"research": "succeeded", "outline": "running", "review": "pending", "write": "pending"}
    nodes, edges = dag_layout.graph(steps, statuses)
    by_id = {n["id"]: n for n in nodes}
    assert by_id["research"]["className"] == "dag-node dag-status-succeeded"
    assert by_id["outline"]["className"] == "dag-node dag-status-running"
    assert by_id["outline"]["data"]["label"] == "outline\nagent · meeting-facilitator\nrunning"
    assert len({e["id"] for e in edges}) == len(edges)
    assert [(e["source"], e["target"], e.get("animated", False)) for e in edges] == [
        ("research", "outline", True),
        ("outline", "review", False),
        ("review", "write", False),
    ]
    # Every status has its colours (Radix variables, so dark mode follows); muted ones are dashed.
    css = dag_layout.stylesheet()
    for status, scale in (("pending", "gray"), ("running", "blue"), ("waiting", "amber"), ("succeeded", "green")):
        assert f".dag-status-{status}{{background:var(--{scale}-3)" in css
    assert ".dag-status-failed{background:var(--red-3)" in css
    for status in ("skipped", "cancelled"):
        assert f".dag-status-{status}{{" in css.split(f".dag-status-{status}")[0] + f".dag-status-{status}{{"
        assert "border-style:dashed" in css.split(f".dag-status-{status}{{", 1)[1].split("}", 1)[0]
    assert dag_layout.graph(steps[:1], {"research": "bogus"})[0][0]["className"] == "dag-node dag-status-pending"


def test_editor_graph_outlines_the_step_a_validation_error_names() -> None:
    raw = {"name": "x", "steps": ["not a step", {"id": "a"}, {"id": "b", "depends_on": ["zz"]}, {"id": "a"}]}
    steps = dag_layout.steps_from_spec(raw)
    assert [s.id for s in steps] == ["a", "b"]  # the non-mapping and the repeated id are left out
    assert dag_layout.error_step_id("spec.steps[2].depends_on", steps) == "b"
    assert dag_layout.error_step_id("spec.steps[0]", steps) is None
    assert dag_layout.error_step_id("spec.name", steps) is None
    nodes, edges = dag_layout.graph(steps, error_step="b")
    assert edges == []  # the unknown dependency draws nothing
    assert nodes[1]["className"] == "dag-node dag-type-agent dag-error"
    assert ".dag-error{border:3px solid var(--red-9)}" in dag_layout.stylesheet()
    assert dag_layout.graph_key(steps) != dag_layout.graph_key(steps[:1])
    assert dag_layout.steps_from_spec("not a mapping") == []


# ------------------------------------------------------------ formatting


def test_money_is_exact_as_on_every_page_and_durations() -> None:
    run = WorkflowRun(tenant_id=uuid.uuid4(), workflow_id=uuid.uuid4(), version=1, cost_micros=120)
    assert run_states.run_row(run, "flow").cost == "$0.000120"  # as the playground and analytics show money
    row = StepRun(tenant_id=run.tenant_id, run_id=run.id, step_id="a", cost_micros=12_345_678)
    assert run_states.step_row(row, None, 1000).cost == "$12.345678"
    start = datetime(2025, 1, 1, tzinfo=UTC)
    assert fmt.duration(None, None) == ""
    assert fmt.duration(start, start + timedelta(seconds=1.25)) == "1.2 s"
    assert fmt.duration(start, start + timedelta(seconds=184)) == "3 min 04 s"
    assert fmt.duration(start, start + timedelta(hours=2, minutes=5)) == "2 h 05 min"
    assert formatting.when(start) == "2025-01-01 00:00 UTC"


def test_outputs_are_previewed_within_a_budget() -> None:
    assert fmt.as_text({"a": 1}) == '{\n  "a": 1\n}'
    assert fmt.clip("x" * 50, 10) == "x" * 10 + "… (40 more characters)"
    assert formatting.preview("a\n\n b   c") == "a b c"
    assert fmt.preview_budget(1) == fmt.PREVIEW_CHARS
    assert fmt.preview_budget(200) * 200 <= fmt.PREVIEWS_BUDGET
    row = StepRun(tenant_id=uuid.uuid4(), run_id=uuid.uuid4(), step_id="s", output="y" * 10_000, status="succeeded")
    view = run_states.step_row(row, None, fmt.preview_budget(200))
    assert len(view.output_preview) == fmt.preview_budget(200) and view.has_more
    short = StepRun(tenant_id=uuid.uuid4(), run_id=uuid.uuid4(), step_id="s", output="ok", status="succeeded")
    assert not run_states.step_row(short, None, 160).has_more


def test_the_run_page_state_of_a_200_step_run_stays_under_100_kb() -> None:
    """The largest spec (200 steps) with long outputs and errors: what the run page holds."""
    steps = [
        {"id": f"step_{i:03d}_analysis", "agent": "data-analyst", "depends_on": [f"step_{i - 1:03d}_analysis"]}
        if i
        else {"id": "step_000_analysis", "agent": "data-analyst"}
        for i in range(200)
    ]
    spec_steps = run_states.spec_steps({"name": "big", "steps": steps})
    run_id = uuid.uuid4()
    rows = [
        StepRun(
            tenant_id=run_id,
            run_id=run_id,
            step_id=s.node.id,
            status="failed",
            output="z" * 50_000,
            input="i" * 50_000,
            error="e" * 2000,
            cost_micros=1234,
        )
        for s in spec_steps
    ]
    budget = fmt.preview_budget(len(rows))
    view = [dataclasses.asdict(run_states.step_row(r, s, budget)) for r, s in zip(rows, spec_steps, strict=True)]
    shown = view[: run_states.STEPS_PER_PAGE]  # the table shows a page of them
    nodes, edges = dag_layout.graph([s.node for s in spec_steps], {r.step_id: r.status for r in rows})
    step_ids = [r.step_id for r in rows]
    size = len(json.dumps([shown, nodes, edges, step_ids]))
    assert size < 100_000, size


def test_spec_yaml_round_trips() -> None:
    spec = specs.dump(
        specs.validate(specs.parse(RESEARCH_BRIEF), agents={"data-analyst", "meeting-facilitator"}, tools=())
    )
    text = fmt.spec_yaml(spec)
    assert text.startswith("name: research-brief")
    assert specs.parse(text) == spec


def test_run_dialog_values() -> None:
    fields = workflow_states.input_fields({"topic": "string", "tags": "list"})
    assert [(f.name, f.multiline) for f in fields] == [("topic", False), ("tags", True)]
    assert workflow_states.run_values({"topic": "solar", "tags": "[]", "extra": "x"}, fields) == {
        "topic": "solar",
        "tags": "[]",
    }
    free = workflow_states.FREE_INPUT
    assert workflow_states.run_values({free: ' {"a": 1} '}, []) == {"a": 1}
    assert workflow_states.run_values({free: ""}, []) == {}
    for bad in ("[1]", "{nope"):
        with pytest.raises(Invalid) as caught:
            workflow_states.run_values({free: bad}, [])
        assert caught.value.field == free
    assert workflow_states.field_key("input.topic") == "topic"
    assert workflow_states.field_key(None) == ""


async def test_demo_specs_are_offered() -> None:
    demos = await workflow_states.demo_specs()
    assert {"research-brief", "ticket-fanout", "escalation-branch"} <= set(demos)
    assert demos["research-brief"] == RESEARCH_BRIEF


# ------------------------------------------------------ the services used


async def _owner(name: str) -> Ctx:
    signup = await tenancy.signup(f"ui-{uuid.uuid4().hex[:8]}@example.com", PASSWORD, name, client_ip="127.0.0.1")
    return await tenancy.authenticate(signup.token)


async def _settled(ctx: Ctx, run_id: uuid.UUID) -> workflows.RunView:
    await executors.embedded().idle()
    return await workflows.get_run(ctx, run_id)


async def test_editor_validation_messages_name_the_field(backend: str) -> None:
    ctx = await _owner("Editors")
    with pytest.raises(Invalid) as caught:
        await workflows.check_spec(ctx, RESEARCH_BRIEF)
    assert caught.value.field == "spec.steps[0].agent"  # the agents are not installed yet
    assert "data-analyst" in caught.value.message
    for template in ("data-analyst", "meeting-facilitator"):
        await marketplace.install(ctx, template)
    spec = await workflows.check_spec(ctx, specs.parse(RESEARCH_BRIEF))
    assert [s.id for s in spec.steps] == ["research", "outline", "review", "write"]
    broken = RESEARCH_BRIEF.replace("depends_on: [research]", "depends_on: [reserch]")
    with pytest.raises(Invalid) as caught:
        await workflows.check_spec(ctx, specs.parse(broken))
    assert caught.value.field == "spec.steps[1].depends_on"
    assert "did you mean 'research'" in caught.value.message
    with pytest.raises(Invalid) as caught:
        specs.parse("name: [unclosed")
    assert caught.value.field == "spec"


async def test_a_run_as_the_run_page_sees_it(backend: str) -> None:
    ctx = await _owner("Runners")
    for template in ("data-analyst", "meeting-facilitator"):
        await marketplace.install(ctx, template)
    view = await workflows.create_workflow(ctx, specs.parse(RESEARCH_BRIEF))
    fields = workflow_states.input_fields(dict(specs.WorkflowSpec.model_validate(view.version.spec).inputs))
    assert [f.name for f in fields] == ["topic"]
    with pytest.raises(Invalid) as caught:
        await workflows.start_run(ctx, view.workflow.id, {})
    assert workflow_states.field_key(caught.value.field) == "topic"

    run = await workflows.start_run(ctx, view.workflow.id, workflow_states.run_values({"topic": "solar"}, fields))
    waiting = await _settled(ctx, run.id)
    assert waiting.run.status == "waiting"
    seen = await workflows.events_after(ctx, run.id, 0)
    assert seen and seen[-1].seq == waiting.run.event_seq
    spec_steps = run_states.spec_steps(view.version.spec)
    rows = [run_states.step_row(r, s, 4000) for r, s in zip(waiting.steps, spec_steps, strict=True)]
    assert [(r.step_id, r.status) for r in rows] == [
        ("research", "succeeded"),
        ("outline", "succeeded"),
        ("review", "waiting"),
        ("write", "pending"),
    ]
    assert rows[2].description.startswith("A person checks")
    assert rows[0].has_output and rows[0].attempts == 1

    decided = await workflows.decide(ctx, run.id, "review", True, "looks good")
    assert any(s.step_id == "review" and s.status == "succeeded" for s in decided.steps)
    done = await _settled(ctx, run.id)
    assert done.run.status == "succeeded", done.run.error
    assert len(await workflows.events_after(ctx, run.id, waiting.run.event_seq)) > 0
    review = run_states.step_row(next(s for s in done.steps if s.step_id == "review"), spec_steps[2], 4000)
    assert review.decision.startswith("approved by ") and review.decision.endswith(": looks good")

    again = await workflows.rerun(ctx, run.id, "write")
    assert again.parent_run_id == run.id and again.from_step == "write"
    rerun = await _settled(ctx, again.id)
    assert rerun.run.status == "succeeded"
    assert [s.reused for s in rerun.steps] == [True, True, True, False]
    assert run_states.run_row(rerun.run, "research-brief").rerun_of == str(run.id)[:8]

    listed = await workflows.list_runs(ctx, status="succeeded", limit=1)
    assert len(listed.items) == 1 and listed.next_cursor
    assert (await workflows.list_runs(ctx, status="waiting")).items == []

    other = await _owner("Other")
    assert (await workflows.list_workflows(other)).items == []
    assert (await workflows.list_runs(other)).items == []
    with pytest.raises(NotFound):
        await workflows.get_run(other, run.id)
    with pytest.raises(NotFound):
        await workflows.events_after(other, run.id, 0)


async def test_cancel_a_waiting_run(backend: str) -> None:
    ctx = await _owner("Cancellers")
    for template in ("data-analyst", "meeting-facilitator"):
        await marketplace.install(ctx, template)
    view = await workflows.create_workflow(ctx, RESEARCH_BRIEF)
    run = await workflows.start_run(ctx, view.workflow.id, {"topic": "tides"})
    assert (await _settled(ctx, run.id)).run.status == "waiting"
    await workflows.cancel_run(ctx, run.id)
    done = await workflows.get_run(ctx, run.id)
    assert done.run.status == "cancelled"
    assert [s.status for s in done.steps][-2:] == ["cancelled", "cancelled"]
    nodes, _ = dag_layout.graph(
        dag_layout.steps_from_spec(view.version.spec), {s.step_id: s.status for s in done.steps}
    )
    assert nodes[-1]["className"] == "dag-node dag-status-cancelled"


async def test_the_workflow_list_reloaded_unchanged_is_not_sent_again(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = await _owner("Lists")

    async def signed_in(state: object) -> Ctx:
        return ctx

    monkeypatch.setattr(paging, "current_ctx", signed_in)
    flow = {"name": "one", "steps": [{"id": "a", "type": "tool", "tool": "calculator", "args": {"expression": "1"}}]}
    await workflows.create_workflow(ctx, flow)
    state = workflow_states.WorkflowsState(_reflex_internal_init=True)
    await state.load()
    assert [r.name for r in state.rows] == ["one"]
    state._clean()  # what a delta to the browser does
    await state.load()
    assert "rows" not in state.dirty_vars
    await workflows.create_workflow(ctx, flow | {"name": "two"})
    await state.load()
    assert "rows" in state.dirty_vars and {r.name for r in state.rows} == {"one", "two"}
