"""Workflows over REST: versions, validation errors naming step and field,
runs, approval, the SSE event stream with Last-Event-ID resume, two tenants."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from atom_core.workflows import executors

pytestmark = pytest.mark.usefixtures("test_tools")

SPEC = {
    "name": "brief",
    "inputs": {"topic": "string"},
    "steps": [
        {"id": "notes", "type": "tool", "tool": "effect", "args": {"name": "{{ inputs.topic }}"}},
        {"id": "review", "type": "approval", "depends_on": ["notes"]},
        {
            "id": "total",
            "type": "tool",
            "tool": "calculator",
            "args": {"expression": "6 * 7"},
            "depends_on": ["review"],
        },
    ],
    "output": "{{ steps.notes.output.name }}: {{ steps.total.output.result }}",
}
YAML_SPEC = """
name: from-yaml
steps:
  - id: only
    type: tool
    tool: calculator
    args: {expression: "1 + 1"}
"""


async def create(client: httpx.AsyncClient, account, spec=SPEC, **extra) -> dict:
    response = await client.post("/api/v1/workflows", json={"spec": spec} | extra, headers=account.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def run_to_settle(client: httpx.AsyncClient, account, run_id: str) -> dict:
    await executors.embedded().idle()
    response = await client.get(f"/api/v1/runs/{run_id}", headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_create_version_and_read_back(client: httpx.AsyncClient, make_account, effects_file) -> None:
    owner = await make_account()
    created = await create(client, owner)
    assert created["version"] == 1 and created["name"] == "brief" and created["spec"]["steps"][0]["id"] == "notes"

    changed = json.loads(json.dumps(SPEC))
    changed["steps"][2]["args"]["expression"] = "7 * 7"
    put = await client.put(f"/api/v1/workflows/{created['id']}", json={"spec": changed}, headers=owner.headers)
    assert put.status_code == 200 and put.json()["version"] == 2

    v1 = await client.get(f"/api/v1/workflows/{created['id']}?version=1", headers=owner.headers)
    latest = await client.get(f"/api/v1/workflows/{created['id']}", headers=owner.headers)
    assert v1.json()["spec"]["steps"][2]["args"]["expression"] == "6 * 7"
    assert latest.json()["version"] == 2 and latest.json()["latest_version"] == 2
    missing = await client.get(f"/api/v1/workflows/{created['id']}?version=9", headers=owner.headers)
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "version"

    listed = (await client.get("/api/v1/workflows", headers=owner.headers)).json()
    assert [w["name"] for w in listed["items"]] == ["brief"]
    yaml_made = await create(client, owner, YAML_SPEC)
    assert yaml_made["name"] == "from-yaml"
    duplicate = await client.post("/api/v1/workflows", json={"spec": SPEC}, headers=owner.headers)
    assert duplicate.status_code == 409 and duplicate.json()["error"]["field"] == "name"


@pytest.mark.parametrize(
    ("mutate", "field", "words"),
    [
        (lambda s: s["steps"][1].update(depends_on=["nope"]), "spec.steps[1].depends_on", "review"),
        (lambda s: s["steps"][0].update(depends_on=["total"]), "spec.steps", "cycle"),
        (lambda s: s["steps"][0].update(tool="no_such_tool"), "spec.steps[0].tool", "notes"),
        (
            lambda s: s["steps"][0].update(type="agent", agent="ghost", tool=None, args={}),
            "spec.steps[0].agent",
            "ghost",
        ),
        (lambda s: s.update(output="{{ steps.notes.output "), "spec.output", ""),
        (lambda s: s["steps"][0]["args"].update(name="{{ steps.total.output }}"), "spec.steps[0].args", "total"),
    ],
)
async def test_invalid_specs_are_rejected_naming_step_and_field(
    client: httpx.AsyncClient, make_account, mutate, field: str, words: str
) -> None:
    owner = await make_account()
    spec = json.loads(json.dumps(SPEC))
    mutate(spec)
    spec["steps"][0] = {k: v for k, v in spec["steps"][0].items() if v is not None}
    response = await client.post("/api/v1/workflows", json={"spec": spec}, headers=owner.headers)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"].startswith(field), error
    assert words in error["message"], error
    assert (await client.get("/api/v1/workflows", headers=owner.headers)).json()["items"] == []  # nothing half-written
    checked = await client.post("/api/v1/workflows/validate", json={"spec": spec}, headers=owner.headers)
    assert checked.status_code == 422 and checked.json()["error"]["field"] == error["field"]


async def test_run_approve_and_read_the_result(client: httpx.AsyncClient, make_account, effects_file) -> None:
    owner = await make_account()
    workflow = await create(client, owner)
    bad_input = await client.post(f"/api/v1/workflows/{workflow['id']}/runs", json={"input": {}}, headers=owner.headers)
    assert bad_input.status_code == 422 and bad_input.json()["error"]["field"] == "input.topic"

    started = await client.post(
        f"/api/v1/workflows/{workflow['id']}/runs", json={"input": {"topic": "solar"}}, headers=owner.headers
    )
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    waiting = await run_to_settle(client, owner, run_id)
    assert waiting["status"] == "waiting"
    assert [(s["id"], s["status"]) for s in waiting["steps"]] == [
        ("notes", "succeeded"),
        ("review", "waiting"),
        ("total", "pending"),
    ]
    bad = await client.post(
        f"/api/v1/runs/{run_id}/steps/review/decision", json={"approved": "yes"}, headers=owner.headers
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "approved"
    ok = await client.post(
        f"/api/v1/runs/{run_id}/steps/review/decision",
        json={"approved": True, "comment": "fine"},
        headers=owner.headers,
    )
    assert ok.status_code == 200, ok.text
    final = await run_to_settle(client, owner, run_id)
    assert final["status"] == "succeeded"
    assert final["output"] == "solar: 42"
    assert final["steps"][1]["decision"]["comment"] == "fine"
    assert {"run_id", "workflow_id", "version", "status", "input", "output", "cost_usd", "steps"} <= set(final)
    assert {"id", "status", "attempts", "output", "error", "cost_usd", "started_at", "finished_at"} <= set(
        final["steps"][0]
    )

    runs = (
        await client.get(f"/api/v1/runs?workflow_id={workflow['id']}&status=succeeded", headers=owner.headers)
    ).json()
    assert [r["run_id"] for r in runs["items"]] == [run_id]
    bad_status = await client.get("/api/v1/runs?status=done", headers=owner.headers)
    assert bad_status.status_code == 422 and bad_status.json()["error"]["field"] == "status"


def parse_sse(text: str) -> list[dict]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if fields:
            events.append({"id": int(fields["id"]), "event": fields["event"], "data": json.loads(fields["data"])})
    return events


async def test_event_stream_replays_and_resumes_after_last_event_id(
    client: httpx.AsyncClient, make_account, effects_file
) -> None:
    owner = await make_account()
    workflow = await create(client, owner, YAML_SPEC)
    started = await client.post(f"/api/v1/workflows/{workflow['id']}/runs", json={}, headers=owner.headers)
    run_id = started.json()["run_id"]
    await run_to_settle(client, owner, run_id)

    whole = await client.get(f"/api/v1/runs/{run_id}/events", headers=owner.headers)
    assert whole.status_code == 200 and whole.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(whole.text)
    assert [e["event"] for e in events] == ["run.queued", "step.started", "step.finished", "run.finished"]
    assert [e["id"] for e in events] == [1, 2, 3, 4]
    assert all(e["data"]["type"] == e["event"] for e in events)

    rest = await client.get(f"/api/v1/runs/{run_id}/events", headers=owner.headers | {"Last-Event-ID": "2"})
    assert [e["id"] for e in parse_sse(rest.text)] == [3, 4]
    bad = await client.get(f"/api/v1/runs/{run_id}/events", headers=owner.headers | {"Last-Event-ID": "x"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "Last-Event-ID"


async def test_event_stream_follows_a_live_run(client: httpx.AsyncClient, make_account, effects_file) -> None:
    owner = await make_account()
    spec = {
        "name": "live",
        "steps": [{"id": "wait", "type": "tool", "tool": "effect", "args": {"name": "w", "sleep_s": 0.5}}],
    }
    workflow = await create(client, owner, spec)
    started = await client.post(f"/api/v1/workflows/{workflow['id']}/runs", json={}, headers=owner.headers)
    run_id = started.json()["run_id"]
    seen = []
    async with client.stream("GET", f"/api/v1/runs/{run_id}/events", headers=owner.headers) as stream:
        async for line in stream.aiter_lines():
            if line.startswith("event: "):
                seen.append(line.removeprefix("event: "))
    assert seen[-1] == "run.finished" and "step.finished" in seen
    await asyncio.sleep(0)


async def test_a_second_tenant_sees_nothing(client: httpx.AsyncClient, make_account, effects_file) -> None:
    owner, stranger = await make_account(), await make_account("Other")
    workflow = await create(client, owner)
    started = await client.post(
        f"/api/v1/workflows/{workflow['id']}/runs", json={"input": {"topic": "x"}}, headers=owner.headers
    )
    run_id = started.json()["run_id"]
    await run_to_settle(client, owner, run_id)
    assert (await client.get("/api/v1/workflows", headers=stranger.headers)).json()["items"] == []
    assert (await client.get("/api/v1/runs", headers=stranger.headers)).json()["items"] == []
    for method, path, body in (
        ("GET", f"/api/v1/workflows/{workflow['id']}", None),
        ("PUT", f"/api/v1/workflows/{workflow['id']}", {"spec": SPEC}),
        ("POST", f"/api/v1/workflows/{workflow['id']}/runs", {"input": {"topic": "x"}}),
        ("GET", f"/api/v1/runs/{run_id}", None),
        ("GET", f"/api/v1/runs/{run_id}/events", None),
        ("POST", f"/api/v1/runs/{run_id}/cancel", None),
        ("POST", f"/api/v1/runs/{run_id}/resume", None),
        ("POST", f"/api/v1/runs/{run_id}/rerun", {"from_step": "notes"}),
        ("POST", f"/api/v1/runs/{run_id}/steps/review/decision", {"approved": True}),
    ):
        response = await client.request(method, path, json=body, headers=stranger.headers)
        assert response.status_code == 404, (method, path, response.text)
    mine = await client.get(f"/api/v1/runs/{run_id}", headers=owner.headers)
    assert mine.json()["steps"][1]["status"] == "waiting"  # the stranger's decision changed nothing
