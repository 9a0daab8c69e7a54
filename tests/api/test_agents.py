"""Agents CRUD over REST: validation with field names, roles, two tenants."""

from __future__ import annotations

import httpx
import pytest

AGENTS = "/api/v1/agents"
VALID = {"slug": "researcher", "name": "Researcher", "system_prompt": "Find facts.", "tools": ["calculator"]}


async def test_create_read_update_delete(client: httpx.AsyncClient, make_account) -> None:
    owner = await make_account()
    created = await client.post(AGENTS, json=VALID, headers=owner.headers)
    assert created.status_code == 201, created.text
    agent = created.json()
    assert agent["model"] == "atom/offline" and "offline" in agent["model_label"]
    assert agent["tools"] == ["calculator"] and agent["maturity"] == "student"

    fetched = await client.get(f"{AGENTS}/{agent['id']}", headers=owner.headers)
    assert fetched.json()["slug"] == "researcher"

    patched = await client.patch(
        f"{AGENTS}/{agent['id']}", json={"temperature": 0.2, "tools": []}, headers=owner.headers
    )
    assert patched.status_code == 200
    assert (patched.json()["temperature"], patched.json()["tools"]) == (0.2, [])
    assert patched.json()["name"] == "Researcher"  # untouched fields stay

    assert (await client.delete(f"{AGENTS}/{agent['id']}", headers=owner.headers)).status_code == 204
    assert (await client.get(f"{AGENTS}/{agent['id']}", headers=owner.headers)).status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"slug": "Not A Slug"}, "slug"),
        ({"slug": "-dash"}, "slug"),
        ({"name": "  "}, "name"),
        ({"model": "no-provider-prefix"}, "model"),
        ({"temperature": 3}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"tools": ["rm_rf"]}, "tools"),
        ({"tools": ["calculator", "calculator"]}, "tools"),
        ({"maturity": "wizard"}, "maturity"),
        ({"system_prompt": "x" * 20_001}, "system_prompt"),
        ({"surprise": 1}, "surprise"),
        ({"fallbacks": ["no-provider-prefix"]}, "fallbacks"),
        ({"fallbacks": ["atom/offline"]}, "fallbacks"),  # the agent's own model
        ({"fallbacks": ["openai/a", "openai/a"]}, "fallbacks"),
        ({"fallbacks": [f"openai/m{i}" for i in range(6)]}, "fallbacks"),
        ({"fallbacks": "openai/a"}, "fallbacks"),
    ],
)
async def test_invalid_agent_names_the_field_and_writes_nothing(
    client: httpx.AsyncClient, make_account, change: dict, field: str
) -> None:
    owner = await make_account()
    response = await client.post(AGENTS, json=VALID | change, headers=owner.headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert (await client.get(AGENTS, headers=owner.headers)).json()["items"] == []


async def test_fallbacks_are_stored_in_order_and_patchable(client: httpx.AsyncClient, make_account) -> None:
    owner = await make_account()
    body = VALID | {"model": "openai/primary", "fallbacks": ["anthropic/second", "openai/third"]}
    agent = (await client.post(AGENTS, json=body, headers=owner.headers)).json()
    assert agent["fallbacks"] == ["anthropic/second", "openai/third"]
    url = f"{AGENTS}/{agent['id']}"
    patched = await client.patch(url, json={"fallbacks": ["openai/third"]}, headers=owner.headers)
    assert patched.status_code == 200 and patched.json()["fallbacks"] == ["openai/third"]
    clash = await client.patch(url, json={"model": "openai/third"}, headers=owner.headers)
    assert clash.status_code == 422 and clash.json()["error"]["field"] == "fallbacks"
    assert (await client.get(url, headers=owner.headers)).json()["fallbacks"] == ["openai/third"]
    plain = (await client.post(AGENTS, json=VALID | {"slug": "plain"}, headers=owner.headers)).json()
    assert plain["fallbacks"] == []


async def test_slug_is_unique_per_tenant_only(client: httpx.AsyncClient, make_account) -> None:
    a, b = await make_account("A"), await make_account("B")
    assert (await client.post(AGENTS, json=VALID, headers=a.headers)).status_code == 201
    again = await client.post(AGENTS, json=VALID, headers=a.headers)
    assert again.status_code == 409 and again.json()["error"]["field"] == "slug"
    assert (await client.post(AGENTS, json=VALID, headers=b.headers)).status_code == 201


async def test_tenant_b_cannot_see_or_touch_as_agents(client: httpx.AsyncClient, make_account) -> None:
    a, b = await make_account("A"), await make_account("B")
    agent = (await client.post(AGENTS, json=VALID, headers=a.headers)).json()
    url = f"{AGENTS}/{agent['id']}"
    assert (await client.get(url, headers=b.headers)).status_code == 404
    assert (await client.patch(url, json={"name": "Mine"}, headers=b.headers)).status_code == 404
    assert (await client.delete(url, headers=b.headers)).status_code == 404
    assert (await client.get(AGENTS, headers=b.headers)).json()["items"] == []
    assert (await client.get(url, headers=a.headers)).json()["name"] == "Researcher"


async def test_viewer_reads_but_cannot_write(client: httpx.AsyncClient, make_account) -> None:
    owner, viewer = await make_account("A"), await make_account("V")
    added = await client.post("/api/v1/members", json={"email": viewer.email, "role": "viewer"}, headers=owner.headers)
    assert added.status_code == 201
    as_viewer = viewer.headers | {"X-Tenant-ID": owner.tenant_id}
    agent = (await client.post(AGENTS, json=VALID, headers=owner.headers)).json()
    assert (await client.get(AGENTS, headers=as_viewer)).json()["items"][0]["id"] == agent["id"]
    assert (await client.post(AGENTS, json=VALID | {"slug": "x"}, headers=as_viewer)).status_code == 403
    assert (await client.delete(f"{AGENTS}/{agent['id']}", headers=as_viewer)).status_code == 403


async def test_list_filters_and_pages(client: httpx.AsyncClient, make_account) -> None:
    owner = await make_account()
    for i, category in enumerate(["sales", "sales", "support"]):
        body = VALID | {"slug": f"a{i}", "name": f"Agent {i}", "category": category}
        assert (await client.post(AGENTS, json=body, headers=owner.headers)).status_code == 201
    sales = (await client.get(AGENTS, params={"category": "sales"}, headers=owner.headers)).json()["items"]
    assert sorted(a["slug"] for a in sales) == ["a0", "a1"]
    found = (await client.get(AGENTS, params={"q": "agent 2"}, headers=owner.headers)).json()["items"]
    assert [a["slug"] for a in found] == ["a2"]
    first = (await client.get(AGENTS, params={"limit": 2}, headers=owner.headers)).json()
    rest = (await client.get(AGENTS, params={"cursor": first["next_cursor"]}, headers=owner.headers)).json()
    assert len(first["items"]) == 2 and len(rest["items"]) == 1 and rest["next_cursor"] is None


async def test_search_treats_wildcards_literally(client: httpx.AsyncClient, make_account) -> None:
    owner = await make_account()
    for slug, name in (("plain", "Plain"), ("under-score", "Under_score")):
        body = VALID | {"slug": slug, "name": name}
        assert (await client.post(AGENTS, json=body, headers=owner.headers)).status_code == 201
    for q, expected in (("_", ["under-score"]), ("%", [])):
        found = (await client.get(AGENTS, params={"q": q}, headers=owner.headers)).json()["items"]
        assert [a["slug"] for a in found] == expected
