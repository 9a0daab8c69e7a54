"""Providers' base URLs and http_get against the egress rules (atom_core.infra.egress):
link-local never, private and loopback only where ATOM_ALLOW_PRIVATE_NETWORKS allows
(by default: embedded mode yes, server mode no)."""

from __future__ import annotations

import httpx
import pytest

from atom_core.agents import tool_settings
from atom_core.llm import config_cache
from atom_core.settings import reset_settings
from atom_core.tenancy import service as tenancy
from tests.api.test_runs import STUB_MODEL, agent, start
from tests.llm_stub import LLMStub

PROVIDERS = "/api/v1/providers"


def allow_private(monkeypatch: pytest.MonkeyPatch, allowed: bool) -> None:
    monkeypatch.setenv("ATOM_ALLOW_PRIVATE_NETWORKS", str(allowed).lower())
    reset_settings()
    config_cache.forget()  # as another node would after its cache expires


@pytest.mark.parametrize(
    "api_base", ["http://169.254.169.254/v1", "http://[fe80::1]:8080", "http://[::ffff:a9fe:a9fe]"]
)
async def test_a_link_local_api_base_is_refused_in_every_mode(
    client: httpx.AsyncClient, make_account, monkeypatch: pytest.MonkeyPatch, api_base: str
) -> None:
    allow_private(monkeypatch, True)
    owner = await make_account()
    response = await client.put(f"{PROVIDERS}/openai", json={"api_base": api_base}, headers=owner.headers)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "api_base" and "link-local" in response.json()["error"]["message"]
    assert (await client.get(PROVIDERS, headers=owner.headers)).json()["items"] == []


async def test_a_loopback_api_base_follows_the_mode(backend: str, client: httpx.AsyncClient, make_account) -> None:
    owner = await make_account()
    body = {"api_base": "http://localhost:11434"}
    response = await client.put(f"{PROVIDERS}/ollama", json=body, headers=owner.headers)
    if backend == "embedded":  # one user's machine: Ollama on localhost is the common case
        assert response.status_code == 200 and response.json()["api_base"] == "http://localhost:11434"
    else:
        assert response.status_code == 422 and response.json()["error"]["field"] == "api_base"
        assert "private, loopback or reserved" in response.json()["error"]["message"]


async def test_the_setting_overrides_the_mode(client: httpx.AsyncClient, make_account, monkeypatch) -> None:
    owner = await make_account()
    body = {"api_base": "http://10.0.0.7:8000/v1"}
    allow_private(monkeypatch, False)
    assert (await client.put(f"{PROVIDERS}/openai", json=body, headers=owner.headers)).status_code == 422
    allow_private(monkeypatch, True)
    assert (await client.put(f"{PROVIDERS}/openai", json=body, headers=owner.headers)).status_code == 200


async def test_a_stored_api_base_is_checked_again_when_used(
    client: httpx.AsyncClient, make_account, monkeypatch, llm_stub: LLMStub
) -> None:
    """A name can point elsewhere later, or the operator can tighten the setting: every use checks."""
    allow_private(monkeypatch, True)
    owner = await make_account()
    body = {"api_key": "sk-test-0123456789abcdef", "api_base": llm_stub.base_url}
    assert (await client.put(f"{PROVIDERS}/openai", json=body, headers=owner.headers)).status_code == 200
    helper = await agent(client, owner, model=STUB_MODEL)

    allow_private(monkeypatch, False)
    run = await start(client, owner, helper["id"], "hi")
    assert run["status"] == "failed" and "api_base" in run["error"] and "private" in run["error"]
    tested = (await client.post(f"{PROVIDERS}/openai/test", json={}, headers=owner.headers)).json()
    assert tested["ok"] is False and "private" in tested["error"]
    assert llm_stub.calls() == []  # nothing reached the address


async def test_a_local_provider_without_api_base_is_refused_where_private_networks_are(
    client: httpx.AsyncClient, make_account, monkeypatch
) -> None:
    """litellm sends ollama/… to localhost:11434 when no api_base is set: that is a loopback address too."""
    allow_private(monkeypatch, False)
    owner = await make_account()
    helper = await agent(client, owner, model="ollama/llama3.1")
    run = await start(client, owner, helper["id"], "hi")
    assert run["status"] == "failed" and "api_base is required for provider 'ollama'" in run["error"]


async def test_http_get_follows_the_setting_of_the_server(backend: str, make_account) -> None:
    owner = await make_account()
    env = await tool_settings.tool_env(await tenancy.authenticate(owner.token))
    assert env.allow_private_networks is (backend == "embedded")
