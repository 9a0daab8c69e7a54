"""Hostile templates: refused by the work budget, rendered in killable worker processes, and never
slowing down another tenant's requests (issue 10, item 2)."""

from __future__ import annotations

import asyncio
import statistics
import time

import httpx
import pytest

from atom_core.context import Ctx
from atom_core.workflows import executors, render_pool, render_worker, templates
from atom_core.workflows import service as workflows
from atom_core.workflows.render_pool import RenderPool
from tests.workflows.conftest import settled

# The template of the report (22 s of a frozen API per run), and others of the same classes.
REPORTED = (
    "{% set a = range(100000)|list %}{% set b = range(100000)|list %}{% for i in range(100000) if a == b %}{% endfor %}"
)
BIG = "{% set a = range(100000)|list %}"
HOSTILE = {
    "reported": REPORTED,
    "membership": BIG + "{% for i in range(100000) if 99999 in a %}{% endfor %}",
    "not in": BIG + "{% for i in range(100000) if -1 not in a %}{% endfor %}",
    "ordering": BIG + "{% for i in range(100000) if a < a + [1] %}{% endfor %}",
    "test": BIG + "{% for i in range(100000) if a is eq(a) %}{% endfor %}",
    "in test": BIG + "{% for i in range(100000) if 99999 is in(a) %}{% endfor %}",
    "strings": "{% set s = 'x' * 99999 %}{% set t = 'x' * 99999 %}{% for i in range(100000) if s == t %}{% endfor %}",
    "slices": BIG + "{% for i in range(100000) if a[1:] %}{% endfor %}",
    "string multiplication": "{% for i in range(100000) %}{% set s = 'x' * 99999 %}{% endfor %}",
    "nested loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "sort": BIG + "{% for i in range(1000) %}{% set b = a | sort %}{% endfor %}",
    "select": BIG + "{% for i in range(1000) %}{% set b = a | select('eq', 5) | list %}{% endfor %}",
    "recursive macro": "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
    "deep join": BIG + "{% set b = [a, a, a] %}{% for i in range(1000) %}{{ b | join(',') | length }}{% endfor %}",
    "memory bomb": BIG + "{% set a = [a] %}{% for i in range(40) %}{% set a = a + a %}{% endfor %}{{ a | length }}",
    "tojson": BIG + "{% for i in range(1000) %}{{ a | tojson | length }}{% endfor %}",
}
REFUSED = ("too much work", "result too large")


@pytest.mark.parametrize("template", HOSTILE.values(), ids=HOSTILE.keys())
def test_the_budget_refuses_hostile_templates(template: str) -> None:
    with pytest.raises(templates.TemplateError) as caught:
        templates.render(template, {})
    assert any(reason in caught.value.message for reason in REFUSED), caught.value.message


@pytest.mark.parametrize("template", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_templates_never_render_inline(template: str) -> None:
    assert not templates.inline(template)


@pytest.mark.parametrize(
    ("template", "expression"),
    [
        ("{{ inputs | tojson }}", False),
        ("{{ steps.a.output if steps.a.output is string else steps.a.output | tojson }}", False),
        ("{{ steps.a.output.name | default('x') | upper }}: {{ inputs.n + 1 }}", False),
        ("steps.a.output.score > 3 and steps.b.status == 'succeeded'", True),
    ],
)
def test_plain_templates_render_inline(template: str, expression: bool) -> None:
    assert templates.inline(template, expression=expression)


def test_inline_work_is_small_even_for_a_plain_template_over_big_data() -> None:
    big = {"inputs": {"rows": list(range(25_000))}}
    assert templates.inline("{{ inputs.rows | tojson }}")
    with pytest.raises(templates.Overspent):
        templates.render("{{ inputs.rows | tojson }}", big, limit=templates.INLINE_WORK_MAX)
    assert len(templates.render("{{ inputs.rows | tojson }}", big)) > 100_000  # a worker has the whole budget


# ------------------------------------------------------------- the worker pool


def request(template: str, context: dict | None = None, kind: str = "render") -> bytes:
    return render_worker.frame({"kind": kind, "text": template, "context": context or {}})


async def test_a_worker_refuses_hostile_templates_and_keeps_working() -> None:
    pool = RenderPool(workers=2)
    try:
        replies = await asyncio.gather(*(pool.ask(request(t)) for t in HOSTILE.values()))
        for name, reply in zip(HOSTILE, replies, strict=True):
            assert any(reason in reply.get("error", "") for reason in REFUSED), (name, reply)
        assert await pool.ask(request("{{ inputs.a * 2 }}", {"inputs": {"a": 21}})) == {"value": "42"}
        assert await pool.ask(request("inputs.s.split(',')", {"inputs": {"s": "a,b"}}, "evaluate")) == {
            "value": ["a", "b"]
        }
    finally:
        pool.close()


async def test_a_worker_over_its_time_limit_is_killed_and_replaced() -> None:
    pool = RenderPool(workers=1, time_limit_s=0.005)  # far less than this render takes
    try:
        with pytest.raises(templates.TemplateError, match=r"took longer than 0\.005 s"):
            await pool.ask(request("{% for i in range(60000) %}{% endfor %}"))
        assert not pool._all  # the process was killed, not kept
        pool.time_limit_s = render_pool.TIME_LIMIT_S
        assert await pool.ask(request("{{ 6 * 7 }}")) == {"value": "42"}  # a new process answers
    finally:
        pool.close()


async def test_a_worker_over_its_memory_limit_fails_the_render_and_is_replaced() -> None:
    # A limit just above the worker's own size: the data to render cannot fit, although its work is small.
    probe = RenderPool(workers=1)
    try:
        await probe.ask(request("{{ 1 }}"))
        (worker,) = probe._all
        size_mb = _vm_size_mb(worker.process.pid)
    finally:
        probe.close()
    pool = RenderPool(workers=1, memory_limit_mb=size_mb + 8)
    try:
        with pytest.raises(templates.TemplateError, match="too much memory"):  # its pipe broke as it ended
            reply = await pool.ask(request("{{ inputs.text[:10] }}", {"inputs": {"text": "x" * 16_000_000}}))
            raise templates.TemplateError(reply.get("error", ""))  # or it answered first
        assert not pool._all  # no process kept
        assert await pool.ask(request("{{ 'still' }} {{ 'here' }}")) == {"value": "still here"}
    finally:
        pool.close()


async def test_a_worker_gets_none_of_the_servers_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATOM_SECRET_KEY", "a-secret-the-worker-must-not-have")
    pool = RenderPool(workers=1)
    try:
        await pool.ask(request("{{ 1 }}"))
        (worker,) = pool._all
        with open(f"/proc/{worker.process.pid}/environ", "rb") as environ:
            assert b"a-secret-the-worker-must-not-have" not in environ.read()
    finally:
        pool.close()


def _vm_size_mb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmSize:"))
    return int(line.split()[1]) // 1024


# ------------------------------------------------------------- through the API


CALC = {"id": "calc", "type": "tool", "tool": "calculator", "args": {"expression": "6 * 7"}}


async def create(client: httpx.AsyncClient, account, spec: dict) -> str:
    response = await client.post("/api/v1/workflows", json={"spec": spec}, headers=account.headers)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def run(client: httpx.AsyncClient, account, workflow_id: str, values: dict | None = None) -> dict:
    started = await client.post(
        f"/api/v1/workflows/{workflow_id}/runs", json={"input": values or {}}, headers=account.headers
    )
    assert started.status_code == 202, started.text
    await executors.embedded().idle()
    response = await client.get(f"/api/v1/runs/{started.json()['run_id']}", headers=account.headers)
    return response.json()


async def test_a_hostile_output_fails_the_run_with_the_field_named(client: httpx.AsyncClient, make_account) -> None:
    owner = await make_account()
    workflow_id = await create(client, owner, {"name": "bomb", "steps": [CALC], "output": REPORTED})
    final = await run(client, owner, workflow_id)
    assert final["status"] == "failed"
    assert final["error"].startswith("output: the template does too much work"), final["error"]


async def test_hostile_inputs_and_conditions_fail_their_step(client: httpx.AsyncClient, make_account) -> None:
    owner = await make_account()
    big = "range(100000) | map('string') | list"
    when = f"{big} | select('in', {big}) | list | length > 0"  # a membership test over 100000 items, per item
    condition = {"id": "check", "type": "condition", "when": when, "depends_on": ["calc"]}
    final = await run(client, owner, await create(client, owner, {"name": "when", "steps": [CALC, condition]}))
    assert final["status"] == "failed"
    assert final["error"].startswith("step 'check' failed: when: the template does too much work"), final["error"]
    arguments = CALC | {"args": {"expression": HOSTILE["sort"]}}
    final = await run(client, owner, await create(client, owner, {"name": "args", "steps": [arguments]}))
    assert final["error"].startswith("step 'calc' failed: input: the template does too much work"), final["error"]


async def test_templates_that_need_a_worker_render_the_same(client: httpx.AsyncClient, make_account) -> None:
    owner = await make_account()
    created = await client.post("/api/v1/agents", json={"slug": "echo", "name": "Echo"}, headers=owner.headers)
    assert created.status_code == 201, created.text
    spec = {
        "name": "loops",
        "inputs": {"names": "string"},
        "steps": [
            {
                "id": "sum",
                "type": "tool",
                "tool": "calculator",
                "args": {"expression": "{% for n in range(3) %}{{ n }}{{ ' + ' if not loop.last }}{% endfor %}"},
            },
            {"id": "big", "type": "condition", "when": "inputs.names.split(',') | length > 2", "depends_on": ["sum"]},
            {
                "id": "each",
                "type": "map",
                "agent": "echo",
                "over": "inputs.names.split(',')",
                "input": "{% for c in item %}{{ c | upper }}{% endfor %}-{{ index }}",
                "depends_on": ["big"],
            },
        ],
        "output": "{% for r in steps.each.output %}{{ loop.index }}{% endfor %} sum={{ steps.sum.output.result }}",
    }
    final = await run(client, owner, await create(client, owner, spec), {"names": "ab,cde,f"})
    assert final["status"] == "succeeded", final
    assert final["output"] == "123 sum=3"
    (each,) = [step for step in final["steps"] if step["id"] == "each"]
    for expected, text in zip(["AB-0", "CDE-1", "F-2"], each["output"], strict=True):
        assert expected in text


async def test_hostile_templates_do_not_slow_another_tenants_requests(client: httpx.AsyncClient, make_account) -> None:
    attacker, other = await make_account("Attacker"), await make_account("Other")
    workflow_id = await create(client, attacker, {"name": "bomb", "steps": [CALC], "output": REPORTED})
    outcomes: list[str] = []

    async def latency() -> float:
        started = time.perf_counter()
        response = await client.get("/api/v1/me", headers=other.headers)
        assert response.status_code == 200
        return time.perf_counter() - started

    async def latencies(n: int) -> list[float]:
        samples = []
        for _ in range(n):
            samples.append(await latency())
            await asyncio.sleep(0.01)
        return samples

    async def attack(stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = await client.post(f"/api/v1/workflows/{workflow_id}/runs", json={}, headers=attacker.headers)
            run_id = started.json()["run_id"]
            while True:
                await asyncio.sleep(0.1)
                view = (await client.get(f"/api/v1/runs/{run_id}", headers=attacker.headers)).json()
                if view["status"] not in ("queued", "running"):
                    outcomes.append(view["error"] or view["status"])
                    break

    await latencies(10)  # warm
    before = await latencies(30)
    stop = asyncio.Event()
    attackers = [asyncio.create_task(attack(stop)) for _ in range(3)]
    try:
        await asyncio.sleep(0.5)  # the first renders are under way
        loaded = statistics.median(await latencies(60))
        busy = len(outcomes)
    finally:
        stop.set()
        await asyncio.gather(*attackers)
    unloaded = statistics.median(before + await latencies(30))  # before and after: the host's load drifts
    assert busy >= 1 and all("too much work" in outcome for outcome in outcomes), outcomes
    assert loaded < 5 * unloaded, f"GET /me took {loaded * 1000:.1f} ms under attack, {unloaded * 1000:.1f} ms before"


# ------------------------------------------------ every executor (Dramatiq workers too)


@pytest.mark.usefixtures("test_tools", "executor")
async def test_every_executor_renders_in_workers_and_refuses_hostile_templates(owner: Ctx) -> None:
    loop_sum = "{% for n in range(4) %}{{ n }}{{ ' + ' if not loop.last }}{% endfor %}"
    steps = [{"id": "sum", "type": "tool", "tool": "calculator", "args": {"expression": loop_sum}}]
    spec = {
        "name": "loops",
        "steps": steps,
        "output": "{% for c in 'ok' %}{{ c }}{% endfor %}={{ steps.sum.output.result }}",
    }
    view = await workflows.create_workflow(owner, spec)
    run = await settled(owner, (await workflows.start_run(owner, view.workflow.id, {})).id)
    assert (run.run.status, run.run.output) == ("succeeded", "ok=6"), run.run.error

    view = await workflows.create_workflow(owner, {"name": "bomb", "steps": steps, "output": REPORTED})
    run = await settled(owner, (await workflows.start_run(owner, view.workflow.id, {})).id)
    assert run.run.status == "failed"
    assert run.run.error.startswith("output: the template does too much work"), run.run.error
