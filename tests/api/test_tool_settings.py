"""The per-tenant http_get allow-list: who may set it, validation, isolation,
and that a run's http_get really follows it (against a real loopback server)."""

from __future__ import annotations

import httpx
import pytest

from atom_core.agents.tool_settings import ToolSettings
from atom_core.db import session_scope
from atom_core.llm import config_cache
from atom_core.tenancy import service as tenancy
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


@pytest.mark.parametrize(
    ("entry", "saved"),
    [
        ("[::1]", "[::1]"),
        ("::1", "[::1]"),
        ("[0:0::1]:8080", "[::1]:8080"),
        ("api.example.com:80", "api.example.com:80"),
    ],
)
async def test_ip_literals_are_saved_in_a_form_that_reads_back(
    client: httpx.AsyncClient, make_account, llm_stub: LLMStub, entry: str, saved: str
) -> None:
    owner = await make_account()
    response = await client.put(SETTINGS, json={"http_allowed_hosts": [entry]}, headers=owner.headers)
    assert response.status_code == 200, response.text
    assert response.json()["http_allowed_hosts"] == [saved]
    config_cache.forget()  # read back from the database, as another node would
    assert (await client.get(SETTINGS, headers=owner.headers)).json() == {"http_allowed_hosts": [saved]}
    again = await client.put(SETTINGS, json={"http_allowed_hosts": [saved]}, headers=owner.headers)
    assert again.json()["http_allowed_hosts"] == [saved]
    await use_stub(owner, llm_stub)
    helper = await agent(client, owner, model=STUB_MODEL)
    assert (await start(client, owner, helper["id"], "hi"))["status"] == "succeeded"


@pytest.mark.parametrize("entry", ["x.com:0", "x.com:70000", "[::1", "[nothost]", "a b", "http://x.com"])
async def test_junk_entries_are_refused_with_the_field_named(client: httpx.AsyncClient, make_account, entry) -> None:
    owner = await make_account()
    response = await client.put(SETTINGS, json={"http_allowed_hosts": [entry]}, headers=owner.headers)
    assert response.status_code == 422 and response.json()["error"]["field"] == "http_allowed_hosts"


async def test_an_unreadable_stored_entry_breaks_neither_settings_nor_runs(
    client: httpx.AsyncClient, make_account, llm_stub: LLMStub
) -> None:
    """Entries saved by an older version ("::1" bare, or junk) are read in today's form or left out."""
    owner, other = await make_account("A"), await make_account("B")
    await client.put(SETTINGS, json={"http_allowed_hosts": ["b.example.com"]}, headers=other.headers)
    ctx = await tenancy.authenticate(owner.token)
    async with session_scope(ctx) as session:
        session.add(ToolSettings(tenant_id=ctx.tenant_id, http_allowed_hosts=["::1", "x.com:99999", "ok.example.com"]))
    config_cache.forget()
    listed = await client.get(SETTINGS, headers=owner.headers)
    assert listed.status_code == 200 and listed.json() == {"http_allowed_hosts": ["[::1]", "ok.example.com"]}
    assert (await client.get(SETTINGS, headers=other.headers)).json() == {"http_allowed_hosts": ["b.example.com"]}
    await use_stub(owner, llm_stub)
    helper = await agent(client, owner, model=STUB_MODEL, tools=["http_get"])
    assert (await start(client, owner, helper["id"], "hi"))["status"] == "succeeded"
