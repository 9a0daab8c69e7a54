"""Provider credentials and model prices over REST: write-only keys, encryption at rest,
two tenants, roles, and a real provider test call against the loopback LLM stub."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
import sqlalchemy as sa

from atom_core.db import session_scope
from atom_core.governance import audit
from atom_core.llm import crypto, providers
from atom_core.settings import reset_settings
from atom_core.tenancy import service as tenancy
from tests.api.test_runs import agent, start
from tests.llm_stub import Fail, LLMStub, Reply

pytestmark = pytest.mark.usefixtures("loopback_allowed")  # the LLM stub listens on 127.0.0.1
PROVIDERS = "/api/v1/providers"
PRICES = "/api/v1/model-prices"


def new_key() -> str:
    return f"sk-proj-{uuid.uuid4().hex}{uuid.uuid4().hex}"


async def ctx_of(account):
    return await tenancy.authenticate(account.token)


async def join(client: httpx.AsyncClient, owner, make_account, role: str) -> dict[str, str]:
    """Headers of a fresh user who is `role` in the owner's tenant."""
    other = await make_account(f"{role} home")
    added = await client.post("/api/v1/members", json={"email": other.email, "role": role}, headers=owner.headers)
    assert added.status_code == 201, added.text
    return other.headers | {"X-Tenant-ID": owner.tenant_id}


# --- encryption ---------------------------------------------------------------------------


async def test_encryption_round_trip_and_a_changed_secret(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    key = new_key()
    token = crypto.encrypt(key)
    assert key not in token and token != crypto.encrypt(key)  # a fresh IV each time
    assert crypto.decrypt(token) == key
    monkeypatch.setenv("ATOM_SECRET_KEY", "another-secret-" + uuid.uuid4().hex)
    reset_settings()
    with pytest.raises(crypto.CredentialUnreadable, match="secret key has changed") as error:
        crypto.decrypt(token)
    assert error.value.status == 409 and key not in error.value.message


async def test_the_stored_key_is_encrypted(client: httpx.AsyncClient, make_account) -> None:
    owner = await make_account()
    key = new_key()
    assert (await client.put(f"{PROVIDERS}/openai", json={"api_key": key}, headers=owner.headers)).status_code == 200
    ctx = await ctx_of(owner)
    async with session_scope(ctx) as session:
        raw = (
            await session.exec(sa.text("SELECT provider, api_key_encrypted, api_key_hint FROM provider_credentials"))
        ).all()
    assert len(raw) == 1
    provider, stored, hint = raw[0]
    assert provider == "openai" and hint == "…" + key[-4:]
    assert key not in stored and key[:12] not in stored and key[-12:] not in stored
    assert crypto.decrypt(stored) == key


# --- the key is write-only --------------------------------------------------------------


async def test_api_never_returns_the_key(client: httpx.AsyncClient, make_account) -> None:
    owner = await make_account()
    key = new_key()
    put = await client.put(
        f"{PROVIDERS}/openai", json={"api_key": key, "api_base": "https://llm.example.com/v1"}, headers=owner.headers
    )
    assert put.status_code == 200, put.text
    assert put.json() | {"updated_at": None} == {
        "provider": "openai",
        "api_key_set": True,
        "api_key_hint": "…" + key[-4:],
        "api_base": "https://llm.example.com/v1",
        "updated_at": None,
    }
    listed = await client.get(PROVIDERS, headers=owner.headers)
    assert [p["provider"] for p in listed.json()["items"]] == ["openai"]
    assert listed.json()["items"][0]["api_key_set"] is True
    for response in (put, listed):
        assert key not in response.text and key[:12] not in response.text
        assert "api_key" not in response.json() and "api_key_encrypted" not in response.text

    events = await audit.list_events(await ctx_of(owner))
    provider_events = [e for e in events if e.action.startswith("provider.")]
    assert [e.action for e in provider_events] == ["provider.created"]
    assert provider_events[0].details["api_key"] == "set"
    assert all(key not in json.dumps(e.details) and key not in e.target for e in events)


async def test_omitted_key_is_kept_null_removes_it(client: httpx.AsyncClient, make_account) -> None:
    owner = await make_account()
    key = new_key()
    url = f"{PROVIDERS}/openai"
    await client.put(url, json={"api_key": key}, headers=owner.headers)
    based = await client.put(url, json={"api_base": "http://127.0.0.1:11434"}, headers=owner.headers)
    assert based.json()["api_key_set"] is True and based.json()["api_base"] == "http://127.0.0.1:11434"
    assert (await providers.credentials_for(await ctx_of(owner), "openai/gpt-4o-mini")).api_key == key
    cleared = await client.put(url, json={"api_key": None, "api_base": ""}, headers=owner.headers)
    assert cleared.json() | {"updated_at": None} == {
        "provider": "openai",
        "api_key_set": False,
        "api_key_hint": None,
        "api_base": None,
        "updated_at": None,
    }
    assert await providers.credentials_for(await ctx_of(owner), "openai/gpt-4o-mini") == providers.Credentials()


async def test_delete_provider(client: httpx.AsyncClient, make_account) -> None:
    owner = await make_account()
    url = f"{PROVIDERS}/anthropic"
    assert (await client.delete(url, headers=owner.headers)).status_code == 404
    await client.put(url, json={"api_key": new_key()}, headers=owner.headers)
    assert (await client.delete(url, headers=owner.headers)).status_code == 204
    assert (await client.get(PROVIDERS, headers=owner.headers)).json()["items"] == []
    missing = await client.delete(url, headers=owner.headers)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "body", "field"),
    [
        ("not-a-provider", {"api_key": "sk-abcdefghijklmnop"}, "provider"),
        ("atom", {}, "provider"),
        ("OpenAI", {}, "provider"),
        ("openai", {"api_key": "   "}, "api_key"),
        ("openai", {"api_key": "sk-with space-inside"}, "api_key"),
        ("openai", {"api_key": "x" * 4097}, "api_key"),
        ("openai", {"api_base": "ftp://files.example.com"}, "api_base"),
        ("openai", {"api_base": "javascript:alert(1)"}, "api_base"),
        ("openai", {"api_base": "https://user:pw@llm.example.com"}, "api_base"),
        ("openai", {"api_base": "https://llm.example.com/v1?key=secret"}, "api_base"),
        ("openai", {"api_base": "https://llm.example.com:99999"}, "api_base"),
        ("openai", {"api_key": 42}, "api_key"),
        ("openai", {"surprise": 1}, "surprise"),
    ],
)
async def test_invalid_provider_settings_name_the_field(
    client: httpx.AsyncClient, make_account, provider: str, body: dict, field: str
) -> None:
    owner = await make_account()
    response = await client.put(f"{PROVIDERS}/{provider}", json=body, headers=owner.headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert (await client.get(PROVIDERS, headers=owner.headers)).json()["items"] == []


# --- two tenants --------------------------------------------------------------------------


async def test_a_tenants_key_is_invisible_to_another(client: httpx.AsyncClient, make_account) -> None:
    a, b = await make_account("A"), await make_account("B")
    key = new_key()
    await client.put(f"{PROVIDERS}/openai", json={"api_key": key, "api_base": "https://a.example"}, headers=a.headers)
    assert (await client.get(PROVIDERS, headers=b.headers)).json()["items"] == []
    assert (await client.delete(f"{PROVIDERS}/openai", headers=b.headers)).status_code == 404
    tested = await client.post(f"{PROVIDERS}/openai/test", json={}, headers=b.headers)
    assert tested.status_code == 404
    assert await providers.credentials_for(await ctx_of(b), "openai/gpt-4o-mini") == providers.Credentials(None, None)
    a_credentials = await providers.credentials_for(await ctx_of(a), "openai/gpt-4o-mini")
    assert (a_credentials.api_key, a_credentials.api_base) == (key, "https://a.example")
    assert key not in repr(a_credentials)
    # B's own settings for the same provider do not touch A's.
    await client.put(f"{PROVIDERS}/openai", json={"api_key": new_key()}, headers=b.headers)
    assert (await providers.credentials_for(await ctx_of(a), "openai/gpt-4o-mini")).api_key == key


async def test_credentials_follow_the_models_provider(client: httpx.AsyncClient, make_account) -> None:
    owner = await make_account()
    key = new_key()
    await client.put(f"{PROVIDERS}/openai", json={"api_key": key}, headers=owner.headers)
    await client.put(f"{PROVIDERS}/ollama", json={"api_base": "http://127.0.0.1:11434"}, headers=owner.headers)
    ctx = await ctx_of(owner)
    assert (await providers.credentials_for(ctx, "gpt-4o-mini")).api_key == key  # litellm routes it to openai
    assert await providers.credentials_for(ctx, "ollama/llama3.1") == providers.Credentials(
        None, "http://127.0.0.1:11434"
    )
    assert await providers.credentials_for(ctx, "anthropic/claude-3-5-haiku-latest") == providers.Credentials()
    assert await providers.credentials_for(ctx, "atom/offline") == providers.Credentials()


# --- roles --------------------------------------------------------------------------------


async def test_member_lists_admin_manages(client: httpx.AsyncClient, make_account) -> None:
    owner = await make_account("Acme")
    await client.put(f"{PROVIDERS}/openai", json={"api_key": new_key()}, headers=owner.headers)
    await client.put(
        f"{PRICES}/openai/my-model", json={"input_usd_per_mtok": 1, "output_usd_per_mtok": 2}, headers=owner.headers
    )
    member = await join(client, owner, make_account, "member")
    admin = await join(client, owner, make_account, "admin")
    viewer = await join(client, owner, make_account, "viewer")

    assert [p["provider"] for p in (await client.get(PROVIDERS, headers=member)).json()["items"]] == ["openai"]
    assert [p["model"] for p in (await client.get(PRICES, headers=member)).json()["items"]] == ["openai/my-model"]
    assert (await client.get(PROVIDERS, headers=viewer)).status_code == 403
    for method, url, body in [
        ("PUT", f"{PROVIDERS}/anthropic", {"api_key": new_key()}),
        ("DELETE", f"{PROVIDERS}/openai", None),
        ("POST", f"{PROVIDERS}/openai/test", {}),
        ("PUT", f"{PRICES}/openai/my-model", {"input_usd_per_mtok": 0, "output_usd_per_mtok": 0}),
        ("DELETE", f"{PRICES}/openai/my-model", None),
    ]:
        response = await client.request(method, url, json=body, headers=member)
        assert response.status_code == 403, (method, url, response.text)
        assert "manage model providers" in response.json()["error"]["message"]

    put = await client.put(f"{PROVIDERS}/anthropic", json={"api_key": new_key()}, headers=admin)
    assert put.status_code == 200 and put.json()["api_key_set"] is True
    price = await client.put(
        f"{PRICES}/openai/my-model", json={"input_usd_per_mtok": 3, "output_usd_per_mtok": 4}, headers=admin
    )
    assert price.status_code == 200 and price.json()["input_usd_per_mtok"] == 3
    assert sorted(p["provider"] for p in (await client.get(PROVIDERS, headers=owner.headers)).json()["items"]) == [
        "anthropic",
        "openai",
    ]


# --- testing a provider against a real OpenAI-compatible server ---------------------------


async def test_provider_test_succeeds_with_key_and_base(
    client: httpx.AsyncClient, make_account, llm_stub: LLMStub
) -> None:
    owner = await make_account()
    key = new_key()
    body = {"api_key": key, "api_base": llm_stub.base_url}
    assert (await client.put(f"{PROVIDERS}/openai", json=body, headers=owner.headers)).status_code == 200
    llm_stub.script("gpt-4o-mini", Reply("p", prompt_tokens=1, completion_tokens=1))
    response = await client.post(f"{PROVIDERS}/openai/test", headers=owner.headers)  # no body: default model
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["ok"] is True and "error" not in result
    assert isinstance(result["latency_ms"], int) and result["latency_ms"] >= 0
    calls = llm_stub.calls("gpt-4o-mini")
    assert len(calls) == 1
    assert calls[0].headers["authorization"] == f"Bearer {key}"
    assert calls[0].body["max_tokens"] == 1
    assert key not in response.text


async def test_provider_test_with_a_chosen_model(client: httpx.AsyncClient, make_account, llm_stub: LLMStub) -> None:
    owner = await make_account()
    body = {"api_key": new_key(), "api_base": llm_stub.base_url}
    await client.put(f"{PROVIDERS}/openai", json=body, headers=owner.headers)
    response = await client.post(f"{PROVIDERS}/openai/test", json={"model": "openai/my-tuned"}, headers=owner.headers)
    assert response.json()["ok"] is True
    assert [c.model for c in llm_stub.calls()] == ["my-tuned"]


async def test_provider_test_reports_a_rejected_key_without_it(
    client: httpx.AsyncClient, make_account, llm_stub: LLMStub
) -> None:
    owner = await make_account()
    key = new_key()
    await client.put(f"{PROVIDERS}/openai", json={"api_key": key, "api_base": llm_stub.base_url}, headers=owner.headers)
    # Real OpenAI echoes a masked key in its 401 message: that must not reach the admin either.
    masked = f"Incorrect API key provided: {key[:8]}{'*' * 20}{key[-4:]}."
    llm_stub.script("gpt-4o-mini", Fail(401, masked))
    response = await client.post(f"{PROVIDERS}/openai/test", json={}, headers=owner.headers)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["ok"] is False
    assert "401" in result["error"] and "API key" in result["error"]
    assert key not in result["error"] and key[:8] not in result["error"] and "***" not in result["error"]
    assert len(llm_stub.calls("gpt-4o-mini")) == 1  # num_retries=0: one request only


async def test_provider_test_reports_other_errors_in_its_own_words(
    client: httpx.AsyncClient, make_account, llm_stub: LLMStub
) -> None:
    owner = await make_account()
    key = new_key()
    await client.put(f"{PROVIDERS}/openai", json={"api_key": key, "api_base": llm_stub.base_url}, headers=owner.headers)
    llm_stub.script("gpt-4o-mini", Fail(500, f"upstream exploded while using {key}"))
    result = (await client.post(f"{PROVIDERS}/openai/test", json={}, headers=owner.headers)).json()
    # The provider's text never comes through: it can echo the key in forms no scrubber knows.
    assert result["ok"] is False and "exploded" not in result["error"]
    assert result["error"] == "the provider had an internal error (InternalServerError, HTTP 500)"
    assert key not in result["error"] and key[:12] not in result["error"] and key[-12:] not in result["error"]
    assert len(llm_stub.calls("gpt-4o-mini")) == 1


async def test_provider_test_never_sends_the_operators_environment_key(
    client: httpx.AsyncClient, make_account, llm_stub: LLMStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    sentinel = "sk-operator-sentinel-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", sentinel)
    owner = await make_account()
    # A base URL of the tenant's choosing and no key of its own.
    await client.put(f"{PROVIDERS}/openai", json={"api_base": llm_stub.base_url}, headers=owner.headers)
    result = (await client.post(f"{PROVIDERS}/openai/test", json={}, headers=owner.headers)).json()
    (call,) = llm_stub.calls("gpt-4o-mini")
    assert result["ok"] is True
    assert sentinel not in call.headers["authorization"]
    assert call.headers["authorization"] == f"Bearer {providers.NO_KEY}"
    # With the operator's explicit consent the environment key is used (the setting works both ways).
    monkeypatch.setenv("ATOM_ALLOW_ENV_PROVIDER_KEYS", "true")
    reset_settings()
    await client.post(f"{PROVIDERS}/openai/test", json={}, headers=owner.headers)
    assert llm_stub.calls("gpt-4o-mini")[1].headers["authorization"] == f"Bearer {sentinel}"


@pytest.mark.parametrize("provider", ["bedrock", "vertex_ai", "sagemaker"])
async def test_providers_that_sign_in_with_the_servers_cloud_identity_are_off(
    client: httpx.AsyncClient, make_account, monkeypatch: pytest.MonkeyPatch, provider: str
) -> None:
    """AWS and Google credentials come from the server's environment, never from a workspace."""
    owner = await make_account()
    body = {"api_key": new_key(), "api_base": "https://example.com"}
    response = await client.put(f"{PROVIDERS}/{provider}", json=body, headers=owner.headers)
    assert response.status_code == 422 and response.json()["error"]["field"] == "provider"
    assert "server's own cloud credentials" in response.json()["error"]["message"]
    assert (await client.get(PROVIDERS, headers=owner.headers)).json()["items"] == []
    helper = await agent(client, owner, model=f"{provider}/some-model")
    run = await start(client, owner, helper["id"], "hi")
    assert run["status"] == "failed" and "server's own cloud credentials" in run["error"]
    monkeypatch.setenv("ATOM_ALLOW_ENV_PROVIDER_KEYS", "true")  # the operator's explicit consent
    reset_settings()
    assert providers.ambient_refusal(provider) is None
    assert (await client.put(f"{PROVIDERS}/{provider}", json=body, headers=owner.headers)).status_code == 200


async def test_provider_test_when_nobody_listens(client: httpx.AsyncClient, make_account) -> None:
    owner = await make_account()
    # Port 9 (discard) on loopback: nothing listens there in the test environment.
    body = {"api_key": new_key(), "api_base": "http://127.0.0.1:9/v1"}
    await client.put(f"{PROVIDERS}/openai", json=body, headers=owner.headers)
    result = (await client.post(f"{PROVIDERS}/openai/test", json={}, headers=owner.headers)).json()
    assert result["ok"] is False and "connect" in result["error"]


async def test_provider_test_needs_a_model_and_a_configured_provider(client: httpx.AsyncClient, make_account) -> None:
    owner = await make_account()
    await client.put(f"{PROVIDERS}/gemini", json={"api_key": new_key()}, headers=owner.headers)
    no_model = await client.post(f"{PROVIDERS}/gemini/test", json={}, headers=owner.headers)
    assert no_model.status_code == 422 and no_model.json()["error"]["field"] == "model"
    bad_model = await client.post(f"{PROVIDERS}/gemini/test", json={"model": "has space"}, headers=owner.headers)
    assert bad_model.status_code == 422 and bad_model.json()["error"]["field"] == "model"
    unconfigured = await client.post(f"{PROVIDERS}/openai/test", json={}, headers=owner.headers)
    assert unconfigured.status_code == 404 and unconfigured.json()["error"]["field"] == "provider"


async def test_a_changed_secret_makes_the_key_unreadable_not_leaked(
    client: httpx.AsyncClient, make_account, monkeypatch: pytest.MonkeyPatch, llm_stub: LLMStub
) -> None:
    owner = await make_account()
    key = new_key()
    await client.put(f"{PROVIDERS}/openai", json={"api_key": key, "api_base": llm_stub.base_url}, headers=owner.headers)
    admin_key = await client.post("/api/v1/api-keys", json={"name": "ops", "role": "admin"}, headers=owner.headers)
    headers = {"Authorization": f"Bearer {admin_key.json()['key']}"}  # API keys survive a secret change
    ctx = await ctx_of(owner)

    monkeypatch.setenv("ATOM_SECRET_KEY", "rotated-" + uuid.uuid4().hex)
    reset_settings()
    with pytest.raises(crypto.CredentialUnreadable, match="'openai'"):
        await providers.credentials_for(ctx, "openai/gpt-4o-mini")
    response = await client.post(f"{PROVIDERS}/openai/test", json={}, headers=headers)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "credential_unreadable"
    assert "set the key again" in response.json()["error"]["message"] and key not in response.text
    assert llm_stub.calls() == []
    # Listing still works (it never decrypts), and setting the key again heals it.
    assert (await client.get(PROVIDERS, headers=headers)).json()["items"][0]["api_key_set"] is True
    await client.put(f"{PROVIDERS}/openai", json={"api_key": key}, headers=headers)
    assert (await providers.credentials_for(ctx, "openai/gpt-4o-mini")).api_key == key


# --- model prices over REST ---------------------------------------------------------------


async def test_model_prices_crud_with_slashes_and_numbers(client: httpx.AsyncClient, make_account) -> None:
    owner = await make_account()
    url = f"{PRICES}/openai/org/my-model"  # the model string holds two slashes
    put = await client.put(url, json={"input_usd_per_mtok": 0.15, "output_usd_per_mtok": "0.6"}, headers=owner.headers)
    assert put.status_code == 200, put.text
    assert put.json()["model"] == "openai/org/my-model"
    assert (put.json()["input_usd_per_mtok"], put.json()["output_usd_per_mtok"]) == (0.15, 0.6)
    assert '"input_usd_per_mtok":0.15' in put.text  # a JSON number, not a string
    listed = (await client.get(PRICES, headers=owner.headers)).json()["items"]
    assert [(p["model"], p["input_usd_per_mtok"], p["output_usd_per_mtok"]) for p in listed] == [
        ("openai/org/my-model", 0.15, 0.6)
    ]
    assert (await client.delete(url, headers=owner.headers)).status_code == 204
    assert (await client.get(PRICES, headers=owner.headers)).json()["items"] == []
    assert (await client.delete(url, headers=owner.headers)).status_code == 404


@pytest.mark.parametrize(
    ("model", "body", "field"),
    [
        ("openai/m", {"input_usd_per_mtok": -1, "output_usd_per_mtok": 1}, "input_usd_per_mtok"),
        ("openai/m", {"input_usd_per_mtok": 1, "output_usd_per_mtok": 20000}, "output_usd_per_mtok"),
        ("openai/m", {"input_usd_per_mtok": "0.1234567", "output_usd_per_mtok": 1}, "input_usd_per_mtok"),
        ("openai/m", {"input_usd_per_mtok": "lots", "output_usd_per_mtok": 1}, "input_usd_per_mtok"),
        ("openai/m", {"input_usd_per_mtok": 1}, "output_usd_per_mtok"),
        ("openai/m", {"input_usd_per_mtok": 1, "output_usd_per_mtok": 1, "currency": "EUR"}, "currency"),
        ("atom/offline", {"input_usd_per_mtok": 1, "output_usd_per_mtok": 1}, "model"),
        ("bad model", {"input_usd_per_mtok": 1, "output_usd_per_mtok": 1}, "model"),
    ],
)
async def test_invalid_prices_name_the_field(
    client: httpx.AsyncClient, make_account, model: str, body: dict, field: str
) -> None:
    owner = await make_account()
    response = await client.put(f"{PRICES}/{model}", json=body, headers=owner.headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert (await client.get(PRICES, headers=owner.headers)).json()["items"] == []


async def test_prices_are_per_tenant_over_rest(client: httpx.AsyncClient, make_account) -> None:
    a, b = await make_account("A"), await make_account("B")
    body = {"input_usd_per_mtok": 1, "output_usd_per_mtok": 2}
    assert (await client.put(f"{PRICES}/openai/m", json=body, headers=a.headers)).status_code == 200
    assert (await client.get(PRICES, headers=b.headers)).json()["items"] == []
    assert (await client.delete(f"{PRICES}/openai/m", headers=b.headers)).status_code == 404
    assert len((await client.get(PRICES, headers=a.headers)).json()["items"]) == 1
