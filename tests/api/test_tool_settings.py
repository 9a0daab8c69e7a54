"""The per-tenant http_get allow-list: who may set it, validation, isolation,
and that a run's http_get really follows it (against a real loopback server)."""

from __future__ import annotations

import httpx
import pytest

from tests.api.test_runs import STUB_MODEL, agent, start, use_stub
from tests.llm_stub import LLMStub, Reply, ToolCall

pytestmark = pytest.mark.usefixtures("loopback_allowed")  # the LLM stub listens on 127.0.0.1
SETTINGS = "/api/v1/tool-settings"


async def test_admin_sets_hosts_member_cannot_and_bad_hosts_are_named(client: httpx.AsyncClient, make_account) -> None:
    owner, member = await make_account("A"), await make_account("M")
    await client.post("/api/v1/members", json={"email": member.email, "role": "member"}, headers=owner.headers)
    assert (await client.get(SETTINGS, headers=owner.headers)).json() == {"http_allowed_hosts": []}

    saved = await client.put(
        SETTINGS, json={"http_allowed_hosts": ["Docs.Example.com", "api.example.com:8443"]}, headers=owner.headers
    )
    assert saved.status_code == 200
    assert saved.json()["http_allowed_hosts"] == ["api.example.com:8443", "docs.example.com"]

    as_member = member.headers | {"X-Tenant-ID": owner.tenant_id}
    assert (await client.put(SETTINGS, json={"http_allowed_hosts": []}, headers=as_member)).status_code == 403
    bad = await client.put(SETTINGS, json={"http_allowed_hosts": ["http://x.com/path"]}, headers=owner.headers)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "http_allowed_hosts"
    assert (await client.get(SETTINGS, headers=owner.headers)).json()["http_allowed_hosts"] == [
        "api.example.com:8443",
        "docs.example.com",
    ]


async def test_settings_are_per_tenant(client: httpx.AsyncClient, make_account) -> None:
    a, b = await make_account("A"), await make_account("B")
    await client.put(SETTINGS, json={"http_allowed_hosts": ["a.example.com"]}, headers=a.headers)
    assert (await client.get(SETTINGS, headers=b.headers)).json() == {"http_allowed_hosts": []}


async def test_http_get_follows_the_tenants_allow_list(client, make_account, llm_stub: LLMStub) -> None:
    owner = await make_account()
    await use_stub(owner, llm_stub)
    helper = await agent(client, owner, model=STUB_MODEL, tools=["http_get"])
    target = f"http://127.0.0.1:{llm_stub.port}/v1/models"

    def fetch_then_answer() -> None:
        llm_stub.script("stub-model", Reply(tool_calls=[ToolCall("http_get", {"url": target})]), Reply("ok"))

    fetch_then_answer()
    refused = await start(client, owner, helper["id"], "fetch it")
    assert refused["tool_calls"][0]["ok"] is False and "not allow" in refused["tool_calls"][0]["error"].lower()

    await client.put(SETTINGS, json={"http_allowed_hosts": ["127.0.0.1"]}, headers=owner.headers)
    fetch_then_answer()
    fetched = await start(client, owner, helper["id"], "fetch it")
    (call,) = fetched["tool_calls"]
    assert call["ok"] is True and '"status":200' in call["output"].replace(" ", "")


async def test_tools_are_listed_with_schemas(client: httpx.AsyncClient, make_account) -> None:
    owner = await make_account()
    items = (await client.get("/api/v1/tools", headers=owner.headers)).json()["items"]
    by_name = {t["name"]: t for t in items}
    assert {"calculator", "datetime_now", "http_get"} <= set(by_name)
    assert by_name["http_get"]["tags"] == ["network", "read"]
    assert by_name["calculator"]["schema"]["function"]["parameters"]["required"] == ["expression"]
