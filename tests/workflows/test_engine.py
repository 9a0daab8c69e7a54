"""The workflow engine with the embedded executor, on SQLite and PostgreSQL:
ordering, concurrency, conditions, map, approval, retries, timeouts, cancel,
resume, rerun with pinned outputs, recovery of interrupted steps."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlmodel import select

from atom_core.agents import service as agents
from atom_core.context import Ctx
from atom_core.db import session_scope
from atom_core.errors import Conflict, Invalid
from atom_core.llm import pricing, providers
from atom_core.settings import reset_settings
from atom_core.workflows import service as workflows
from atom_core.workflows.models import WorkflowEvent
from tests.llm_stub import LLMStub, Reply
from tests.workflow_tools import done, effects
from tests.workflows.conftest import settled, statuses

pytestmark = pytest.mark.usefixtures("test_tools", "executor")


def effect_step(step_id: str, *deps: str, sleep_s: float = 0.0, **extra) -> dict:
    step = {"id": step_id, "type": "tool", "tool": "effect", "args": {"name": step_id, "sleep_s": sleep_s}}
    return step | ({"depends_on": list(deps)} if deps else {}) | extra


async def start(ctx: Ctx, steps: list[dict], values: dict | None = None, **spec) -> workflows.RunView:
    body = {"name": spec.pop("name", "wf"), "steps": steps} | spec
    view = await workflows.create_workflow(ctx, body)
    run = await workflows.start_run(ctx, view.workflow.id, values or {})
    return await settled(ctx, run.id)


async def test_a_chain_runs_in_dependency_order(owner: Ctx, effects_file: Path) -> None:
    view = await start(owner, [effect_step("c", "b"), effect_step("a"), effect_step("b", "a")])
    assert view.run.status == "succeeded", view.run.error
    assert [name for kind, name, _, _ in effects(effects_file) if kind == "done"] == ["a", "b", "c"]
    assert statuses(view) == {"c": "succeeded", "a": "succeeded", "b": "succeeded"}
    assert {s.step_id: s.attempts for s in view.steps} == {"a": 1, "b": 1, "c": 1}
    assert view.run.output == {"name": "b", "pid": view.steps[0].output["pid"]} or view.run.output["name"] == "b"


async def test_independent_steps_run_at_the_same_time(owner: Ctx, effects_file: Path) -> None:
    view = await start(owner, [effect_step("left", sleep_s=0.5), effect_step("right", sleep_s=0.5)])
    assert view.run.status == "succeeded"
    times = {(kind, name): at for kind, name, _, at in effects(effects_file)}
    # Each started before the other finished: they overlapped.
    assert times[("start", "right")] < times[("done", "left")]
    assert times[("start", "left")] < times[("done", "right")]


async def test_a_false_condition_skips_its_dependents(owner: Ctx, effects_file: Path) -> None:
    steps = [
        effect_step("measure"),
        {"id": "big", "type": "condition", "when": "steps.measure.output.name == 'nope'", "depends_on": ["measure"]},
        {
            "id": "small",
            "type": "condition",
            "when": "steps.measure.output.name == 'measure'",
            "depends_on": ["measure"],
        },
        effect_step("escalate", "big"),
        effect_step("after_escalate", "escalate"),
        effect_step("file", "small"),
    ]
    view = await start(owner, steps, output="{{ steps.file.output.name }}")
    assert view.run.status == "succeeded", view.run.error
    assert statuses(view) == {
        "measure": "succeeded",
        "big": "succeeded",
        "small": "succeeded",
        "escalate": "skipped",
        "after_escalate": "skipped",
        "file": "succeeded",
    }
    assert done(effects_file) == {"measure": 1, "file": 1}
    assert view.run.output == "file"


async def test_map_fans_out_and_gathers_in_item_order(owner: Ctx) -> None:
    await agents.create_agent(owner, agents.AgentInput(slug="writer", name="Writer"))
    steps = [
        {
            "id": "each",
            "type": "map",
            "agent": "writer",
            "over": "inputs.topics.split(',')",
            "input": "Item {{ index }}: {{ item }}",
            "max_parallel": 3,
        }
    ]
    view = await start(owner, steps, {"topics": "alpha,beta,gamma,delta,epsilon"}, inputs={"topics": "string"})
    assert view.run.status == "succeeded", view.run.error
    (each,) = view.steps
    assert len(each.output) == 5
    for index, topic in enumerate(["alpha", "beta", "gamma", "delta", "epsilon"]):
        assert f"Item {index}: {topic}" in each.output[index]
    assert len(each.progress) == 5  # every item was kept as it finished


async def test_approval_waits_then_an_approval_lets_the_run_finish(owner: Ctx, effects_file: Path) -> None:
    steps = [
        effect_step("draft"),
        {"id": "review", "type": "approval", "depends_on": ["draft"]},
        effect_step("send", "review"),
    ]
    view = await start(owner, steps)
    assert view.run.status == "waiting"
    assert statuses(view) == {"draft": "succeeded", "review": "waiting", "send": "pending"}
    assert done(effects_file) == {"draft": 1}

    decided = await workflows.decide(owner, view.run.id, "review", True, "looks good")
    assert decided.steps[1].decision["approved"] is True and decided.steps[1].decision["comment"] == "looks good"
    final = await settled(owner, view.run.id)
    assert final.run.status == "succeeded"
    assert done(effects_file) == {"draft": 1, "send": 1}
    with pytest.raises(Conflict) as again:
        await workflows.decide(owner, view.run.id, "review", True)
    assert again.value.field == "step_id"


async def test_a_rejection_fails_the_run_and_skips_nothing_else(owner: Ctx, effects_file: Path) -> None:
    steps = [{"id": "review", "type": "approval"}, effect_step("send", "review")]
    view = await start(owner, steps)
    await workflows.decide(owner, view.run.id, "review", False, "not now")
    final = await settled(owner, view.run.id)
    assert final.run.status == "failed"
    assert "rejected" in final.run.error and "not now" in final.run.error
    assert done(effects_file) == {}


async def test_bad_decisions_name_the_field(owner: Ctx) -> None:
    view = await start(owner, [{"id": "review", "type": "approval"}])
    with pytest.raises(Invalid) as not_bool:
        await workflows.decide(owner, view.run.id, "review", "yes")
    assert not_bool.value.field == "approved"
    with pytest.raises(Exception) as unknown:
        await workflows.decide(owner, view.run.id, "nope", True)
    assert unknown.value.field == "step_id"


async def test_a_failing_step_is_retried_with_exponential_backoff(owner: Ctx) -> None:
    step = {
        "id": "call",
        "type": "tool",
        "tool": "flaky",
        "args": {"key": "retry-test", "failures": 2},
        "retry": {"max_attempts": 3, "backoff_s": 0.05},
    }
    view = await start(owner, [step])
    assert view.run.status == "succeeded", view.run.error
    assert view.steps[0].attempts == 3
    retries = await _events(owner, view.run.id, "step.retrying")
    assert [e.data["delay_s"] for e in retries] == [0.05, 0.1]
    assert all("flaky failure" in e.data["error"] for e in retries)


async def test_retries_run_out_and_the_run_fails(owner: Ctx, effects_file: Path) -> None:
    failing = {"id": "call", "type": "tool", "tool": "flaky", "args": {"key": "out", "failures": 5}}
    view = await start(owner, [failing | {"retry": {"max_attempts": 2, "backoff_s": 0}}, effect_step("next", "call")])
    assert view.run.status == "failed"
    assert statuses(view) == {"call": "failed", "next": "pending"}
    assert view.steps[0].attempts == 2
    assert "step 'call' failed" in view.run.error and "flaky failure 2" in view.run.error
    assert done(effects_file) == {}


async def test_a_step_over_its_timeout_fails(owner: Ctx, effects_file: Path) -> None:
    view = await start(owner, [effect_step("slow", sleep_s=5, timeout_s=0.2)])
    assert view.run.status == "failed"
    assert view.steps[0].error == "timed out after 0.2 s"
    assert done(effects_file) == {}


async def test_cancel_stops_scheduling_and_the_running_step(owner: Ctx, effects_file: Path) -> None:
    view = await workflows.create_workflow(
        owner, {"name": "long", "steps": [effect_step("long", sleep_s=30), effect_step("after", "long")]}
    )
    run = await workflows.start_run(owner, view.workflow.id, {})
    for _ in range(100):
        if effects(effects_file):
            break
        await asyncio.sleep(0.05)
    cancelled = await workflows.cancel_run(owner, run.id)
    assert cancelled.status == "cancelled"
    final = await settled(owner, run.id)
    assert statuses(final) == {"long": "cancelled", "after": "cancelled"}
    assert done(effects_file) == {}  # the running tool was stopped before it finished
    with pytest.raises(Conflict):
        await workflows.cancel_run(owner, run.id)


async def test_resume_runs_failed_steps_again_and_keeps_finished_ones(owner: Ctx, effects_file: Path) -> None:
    steps = [
        effect_step("first"),
        {
            "id": "call",
            "type": "tool",
            "tool": "flaky",
            "args": {"key": "resume", "failures": 1},
            "depends_on": ["first"],
        },
    ]
    view = await start(owner, steps)
    assert view.run.status == "failed"
    resumed = await workflows.resume_run(owner, view.run.id)
    assert resumed.run.status in ("running", "queued", "succeeded")
    final = await settled(owner, view.run.id)
    assert final.run.status == "succeeded", final.run.error
    assert done(effects_file) == {"first": 1}  # not run twice
    assert {s.step_id: s.attempts for s in final.steps} == {"first": 1, "call": 2}


async def test_rerun_reuses_upstream_outputs_and_reports_the_saving(owner: Ctx, llm_stub: LLMStub) -> None:
    await providers.set_provider(owner, "openai", api_key="sk-test-0123456789", api_base=llm_stub.base_url)
    await pricing.set_price(owner, "openai/stub-model", "1", "2")  # dollars per million tokens
    await agents.create_agent(owner, agents.AgentInput(slug="writer", name="Writer", model="openai/stub-model"))
    llm_stub.script(
        "stub-model",
        Reply("research notes", prompt_tokens=1000, completion_tokens=500),
        Reply("draft", prompt_tokens=100, completion_tokens=50),
        Reply("second draft", prompt_tokens=100, completion_tokens=50),
    )
    steps = [
        {"id": "research", "agent": "writer", "input": "research it"},
        {
            "id": "write",
            "agent": "writer",
            "input": "write from {{ steps.research.output }}",
            "depends_on": ["research"],
        },
    ]
    first = await start(owner, steps)
    assert first.run.status == "succeeded", first.run.error
    research_cost = first.steps[0].cost_micros
    assert research_cost == 1000 * 1 + 500 * 2  # micro-dollars: price x usage
    calls_before = len(llm_stub.calls())

    rerun = await workflows.rerun(owner, first.run.id, "write")
    final = await settled(owner, rerun.id)
    assert final.run.status == "succeeded"
    assert final.run.parent_run_id == first.run.id and final.run.from_step == "write"
    assert final.run.saved_micros == research_cost
    assert final.steps[0].reused and final.steps[0].output == "research notes"
    assert len(llm_stub.calls()) == calls_before + 1  # only `write` called the model again
    with pytest.raises(Invalid) as bad:
        await workflows.rerun(owner, first.run.id, "nope")
    assert bad.value.field == "from_step"


async def _events(ctx: Ctx, run_id, kind: str) -> list[WorkflowEvent]:
    async with session_scope(ctx, readonly=True) as session:
        rows = await session.exec(
            select(WorkflowEvent)
            .where(WorkflowEvent.run_id == run_id, WorkflowEvent.type == kind)
            .order_by(WorkflowEvent.seq)
        )
        return list(rows.all())


async def test_events_are_numbered_in_order(owner: Ctx) -> None:
    view = await start(owner, [effect_step("a"), effect_step("b", "a")])
    rows = await workflows.events_after(owner, view.run.id)
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    kinds = [r.type for r in rows]
    assert kinds[0] == "run.queued" and kinds[-1] == "run.finished"
    assert kinds.index("step.finished") < kinds.index("step.started", kinds.index("step.finished"))
    later = await workflows.events_after(owner, view.run.id, after=rows[2].seq)
    assert [r.seq for r in later] == [r.seq for r in rows[3:]]


async def test_two_tenants_never_see_each_others_workflows_or_runs(owner: Ctx) -> None:
    from tests.workflows.conftest import new_owner

    other = await new_owner("Other")
    view = await start(owner, [effect_step("a")])
    mine = await workflows.list_workflows(owner)
    assert [w.name for w in (await workflows.list_workflows(other)).items] == []
    assert [w.name for w in mine.items] == ["wf"]
    assert (await workflows.list_runs(other)).items == []
    for call in (
        workflows.get_run(other, view.run.id),
        workflows.cancel_run(other, view.run.id),
        workflows.resume_run(other, view.run.id),
        workflows.rerun(other, view.run.id, "a"),
        workflows.events_after(other, view.run.id),
        workflows.decide(other, view.run.id, "a", True),
        workflows.get_workflow(other, view.run.workflow_id),
        workflows.start_run(other, view.run.workflow_id, {}),
    ):
        with pytest.raises(Exception) as refused:
            await call
        assert getattr(refused.value, "status", None) == 404, refused.value


def most_at_once(path: Path) -> int:
    """The largest number of effect steps that were running at the same moment."""
    marks = sorted((at, 1 if kind == "start" else -1) for kind, _, _, at in effects(path))
    running = peak = 0
    for _, change in marks:
        running += change
        peak = max(peak, running)
    return peak


async def test_steps_in_flight_are_bounded_per_run(
    owner: Ctx, effects_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATOM_WORKFLOW_MAX_PARALLEL_STEPS", "2")
    reset_settings()
    view = await start(owner, [effect_step(f"s{i}", sleep_s=0.3) for i in range(6)])
    assert view.run.status == "succeeded"
    assert done(effects_file) == {f"s{i}": 1 for i in range(6)}
    assert most_at_once(effects_file) == 2
