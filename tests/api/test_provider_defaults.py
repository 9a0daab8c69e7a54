"""Providers whose litellm default is this machine never get a tenant's request on a server
that refuses private networks: checked over every provider litellm knows, by watching
every connection litellm tries, and with a real loopback stub that must receive nothing."""

from __future__ import annotations

import ipaddress
import socket
import sys
from typing import Any

import httpx
import pytest

from atom_core.errors import AtomError
from atom_core.infra import egress
from atom_core.llm import config_cache, engine, gateway, providers
from atom_core.settings import reset_settings
from atom_core.tenancy import service as tenancy
from tests.api.test_runs import agent, start
from tests.llm_stub import LLMStub

_watching: list[tuple[str, int]] | None = None  # connections that got past ATOM's checks


def _watch(event: str, args: tuple[Any, ...]) -> None:
    """Runs after ATOM's hook: sees only connections it let through, and stops them (no network here)."""
    if event == "socket.connect" and _watching is not None and isinstance(args[1], tuple):
        _watching.append((str(args[1][0]), args[1][1]))
        raise ConnectionRefusedError("the test lets no connection out")


def _offline_getaddrinfo(real):
    def resolve(host, *args, **kwargs):
        if host in ("localhost", "127.0.0.1", "::1") or _is_address(host):
            return real(host, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, "no network in this test")

    return resolve


def _is_address(host: object) -> bool:
    try:
        ipaddress.ip_address(str(host))
    except ValueError:
        return False
    return True


def refuse_private(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATOM_ALLOW_PRIVATE_NETWORKS", "false")
    reset_settings()
    config_cache.forget()


async def test_no_provider_reaches_this_machine_where_private_networks_are_refused(
    backend: str, make_account, monkeypatch: pytest.MonkeyPatch
) -> None:
    global _watching
    refuse_private(monkeypatch)
    for name in [n for n in list(__import__("os").environ) if n.endswith("_API_BASE")]:
        monkeypatch.delenv(name)
    monkeypatch.setattr(socket, "getaddrinfo", _offline_getaddrinfo(socket.getaddrinfo))
    with egress.connections_checked():  # ATOM's hook first: hooks run in the order they were added
        pass
    sys.addaudithook(_watch)  # hooks cannot be removed; it is inert outside this test
    ctx = await tenancy.authenticate((await make_account()).token)
    module = await engine.load()
    local_defaults, leaks, tested = set(), [], 0
    for provider in sorted(str(getattr(p, "value", p)) for p in module.provider_list):
        if provider == providers.LOCAL_PROVIDER:
            continue
        model = f"{provider}/test-model"
        if providers.ambient_refusal(provider) is None:  # those are refused before any call
            await providers.set_provider(ctx, provider, api_key="sk-tenant-0123456789abcdef")
        request = gateway.ChatRequest(model, [{"role": "user", "content": "hi"}], timeout_s=5)
        _watching = []
        try:
            await gateway.complete(ctx, request, policy=gateway.RetryPolicy(0, 0, 0))
        except AtomError as error:
            if "private, loopback or reserved" in error.message or "link-local" in error.message:
                local_defaults.add(provider)
        finally:
            seen, _watching = _watching, None
        tested += 1
        leaks += [(provider, host) for host, _ in seen if not ipaddress.ip_address(host.split("%")[0]).is_global]
    assert leaks == [], leaks
    assert tested > 100
    # Those litellm sends to this machine by default, whether it says so in advance or not.
    assert {"ollama", "ollama_chat", "lemonade", "docker_model_runner", "llamafile", "langflow"} <= local_defaults
    assert "openai" not in local_defaults and "anthropic" not in local_defaults


async def test_a_local_default_receives_no_run_and_no_provider_test(
    backend: str, client: httpx.AsyncClient, make_account, monkeypatch: pytest.MonkeyPatch, llm_stub: LLMStub
) -> None:
    """lemonade's default address (moved by the server's LEMONADE_API_BASE, as an operator may) is the
    stub on loopback: the check follows the address litellm will really call."""
    provider = "lemonade"
    monkeypatch.setenv("LEMONADE_API_BASE", llm_stub.base_url)
    owner = await make_account()
    key = {"api_key": "sk-local-0123456789abcdef"}
    helper = await agent(client, owner, model=f"{provider}/stub-model")

    refuse_private(monkeypatch)
    put = await client.put(f"/api/v1/providers/{provider}", json=key | {"api_base": None}, headers=owner.headers)
    assert put.status_code == 422 and put.json()["error"]["field"] == "api_base"
    assert (await client.put(f"/api/v1/providers/{provider}", json=key, headers=owner.headers)).status_code == 200
    run = await start(client, owner, helper["id"], "hi")
    assert run["status"] == "failed" and f"api_base is required for provider '{provider}'" in run["error"]
    body = {"model": "stub-model"}
    tested = (await client.post(f"/api/v1/providers/{provider}/test", json=body, headers=owner.headers)).json()
    assert tested["ok"] is False and "api_base is required" in tested["error"]
    assert llm_stub.requests == []

    # Where private networks are allowed, the same settings reach the stub: the test can see a leak.
    monkeypatch.setenv("ATOM_ALLOW_PRIVATE_NETWORKS", "true")
    reset_settings()
    config_cache.forget()
    allowed = await start(client, owner, helper["id"], "hi")
    assert allowed["status"] == "succeeded", allowed["error"]
    assert len(llm_stub.calls("stub-model")) == 1
