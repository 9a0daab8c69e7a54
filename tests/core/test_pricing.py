"""Prices and costs: exact decimals, integer micro-dollars, tenant overrides over litellm's map."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
import sqlalchemy as sa

from atom_core.db import session_scope
from atom_core.errors import Forbidden, Invalid, NotFound
from atom_core.governance import audit
from atom_core.llm import engine, pricing
from atom_core.llm.pricing import Price
from atom_core.tenancy import service as tenancy
from tests.conftest import PASSWORD


def price(input_usd: str, output_usd: str, source: str = "tenant") -> Price:
    return Price(Decimal(input_usd), Decimal(output_usd), source)  # type: ignore[arg-type]


async def owner_ctx(name: str = "Acme"):
    signup = await tenancy.signup(f"{name.lower()}-owner@example.com", PASSWORD, name, client_ip="127.0.0.1")
    return await tenancy.authenticate(signup.token)


# --- cost_micros: pure arithmetic ----------------------------------------------------------


@pytest.mark.parametrize(
    ("input_usd", "output_usd", "prompt", "completion", "micros"),
    [
        ("0.15", "0.60", 1234, 567, 525),  # 185.1 + 340.2 = 525.3
        ("0.15", "0.60", 1, 0, 0),  # 0.15 rounds down
        ("0.5", "0", 1, 0, 1),  # exactly half rounds up (a float would be at the mercy of binary)
        ("0.25", "0.25", 1, 1, 1),  # 0.5 in total, rounded once: not 0 + 0 per part
        ("0.000001", "0.000001", 1_000_000, 0, 1),  # the smallest price still counts at volume
        ("2.5", "10", 1_000_000, 1_000_000, 12_500_000),  # $2.50 + $10.00 per Mtok, 1 Mtok each
        ("3", "15", 0, 0, 0),
        ("10000", "10000", 10**9, 10**9, 20_000_000_000_000),  # no overflow, no float
        ("0.1", "0.2", 3, 3, 1),  # 0.3 + 0.6 = 0.9 exactly (0.1 + 0.2 is not 0.3 in floats)
    ],
)
def test_cost_micros_is_exact(input_usd: str, output_usd: str, prompt: int, completion: int, micros: int) -> None:
    assert pricing.cost_micros(price(input_usd, output_usd), prompt, completion) == micros


def test_cost_without_a_price_is_zero_and_negative_tokens_are_refused() -> None:
    assert pricing.cost_micros(None, 10_000, 10_000) == 0
    with pytest.raises(ValueError, match="negative"):
        pricing.cost_micros(price("1", "1"), -1, 0)


# --- litellm's map ---------------------------------------------------------------------------


def test_litellm_price_of_a_known_model_with_and_without_prefix() -> None:
    cost_map = engine.litellm().model_cost
    # The bundled map of litellm 1.106 says 1.5e-07 / 6e-07 USD per token for gpt-4o-mini.
    assert cost_map["gpt-4o-mini"]["input_cost_per_token"] == 1.5e-07
    expected = price("0.15", "0.6", "litellm")
    assert pricing.litellm_price(cost_map, "gpt-4o-mini") == expected
    assert pricing.litellm_price(cost_map, "openai/gpt-4o-mini") == expected
    got = pricing.litellm_price(cost_map, "openai/gpt-4o-mini")
    assert str(got.input_usd_per_mtok) == "0.15"  # converted exactly, not 0.15000000000000002


def test_litellm_price_needs_the_same_provider_and_real_numbers() -> None:
    cost_map = {
        "gpt-x": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "litellm_provider": "openai"},
        "gem": {"input_cost_per_token": 3e-07, "litellm_provider": "vertex_ai-language-models"},
        "broken": {"input_cost_per_token": "cheap", "litellm_provider": "openai"},
        "sample_spec": {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0},
        "big": {"input_cost_per_token": 0.0001, "output_cost_per_token": 0.0002, "litellm_provider": "openai"},
    }
    assert pricing.litellm_price(cost_map, "openai/gpt-x") == price("1", "2", "litellm")
    assert pricing.litellm_price(cost_map, "openrouter/gpt-x") is None  # someone else's price for that name
    assert pricing.litellm_price(cost_map, "vertex_ai/gem") == price("0.3", "0", "litellm")
    assert pricing.litellm_price(cost_map, "broken") is None
    assert pricing.litellm_price(cost_map, "sample_spec") is None
    assert pricing.litellm_price(cost_map, "never-heard-of-it") is None
    assert str(pricing.litellm_price(cost_map, "big").input_usd_per_mtok) == "100"  # not 1E+2


# --- price_for: override, litellm, offline, unknown (both backends) ------------------------


async def test_price_for_prefers_the_tenant_override(backend: str) -> None:
    ctx = await owner_ctx()
    assert await pricing.price_for(ctx, "openai/gpt-4o-mini") == price("0.15", "0.6", "litellm")
    await pricing.set_price(ctx, "openai/gpt-4o-mini", Decimal("1.25"), "5")
    assert await pricing.price_for(ctx, "openai/gpt-4o-mini") == price("1.25", "5", "tenant")
    assert await pricing.price_for(ctx, "gpt-4o-mini") == price("0.15", "0.6", "litellm")  # another string
    await pricing.delete_price(ctx, "openai/gpt-4o-mini")
    assert (await pricing.price_for(ctx, "openai/gpt-4o-mini")).source == "litellm"


async def test_offline_model_is_free_and_unknown_models_have_no_price(backend: str) -> None:
    ctx = await owner_ctx()
    offline = await pricing.price_for(ctx, "atom/offline")
    assert offline == price("0", "0", "offline")
    assert pricing.cost_micros(offline, 10**6, 10**6) == 0
    assert await pricing.price_for(ctx, "openai/no-such-model-xyz") is None
    with pytest.raises(Invalid, match="free") as error:
        await pricing.set_price(ctx, "atom/offline", "1", "1")
    assert error.value.field == "model"


async def test_overrides_belong_to_one_tenant(backend: str) -> None:
    a, b = await owner_ctx("A"), await owner_ctx("B")
    await pricing.set_price(a, "ollama/llama3.1", "0.2", "0.4")
    assert await pricing.price_for(a, "ollama/llama3.1") == price("0.2", "0.4", "tenant")
    assert (await pricing.price_for(b, "ollama/llama3.1")).source == "litellm"  # litellm says 0 for ollama
    assert await pricing.list_prices(b) == []
    with pytest.raises(NotFound):
        await pricing.delete_price(b, "ollama/llama3.1")
    assert [p.model for p in await pricing.list_prices(a)] == ["ollama/llama3.1"]


async def test_prices_are_stored_as_exact_text_and_audited(backend: str) -> None:
    ctx = await owner_ctx()
    first = await pricing.set_price(ctx, "openai/my-model", "0.123456", 7)
    again = await pricing.set_price(ctx, "openai/my-model", "0.1", "0.2")  # replaces, same row
    assert first.created_at == again.created_at and again.updated_at >= first.updated_at
    async with session_scope(ctx) as session:
        rows = (await session.exec(sa.text("SELECT input_usd_per_mtok, output_usd_per_mtok FROM model_prices"))).all()
    assert [tuple(r) for r in rows] == [("0.100000", "0.200000")]
    actions = [e.action for e in await audit.list_events(ctx)]
    assert actions.count("model_price.created") == 1 and actions.count("model_price.updated") == 1


@pytest.mark.parametrize(
    ("model", "input_usd", "output_usd", "field", "words"),
    [
        ("openai/m", "-0.01", "1", "input_usd_per_mtok", "negative"),
        ("openai/m", "1", "-1", "output_usd_per_mtok", "negative"),
        ("openai/m", "10000.000001", "1", "input_usd_per_mtok", "at most 10000"),
        ("openai/m", "1", "0.0000001", "output_usd_per_mtok", "6 decimal places"),
        ("openai/m", "NaN", "1", "input_usd_per_mtok", "finite"),
        ("openai/m", "abc", "1", "input_usd_per_mtok", "number"),
        ("openai/m", True, "1", "input_usd_per_mtok", "number"),
        ("", "1", "1", "model", "LiteLLM model string"),
        ("openai/has space", "1", "1", "model", "LiteLLM model string"),
        ("x" * 201, "1", "1", "model", "LiteLLM model string"),
    ],
)
async def test_set_price_validation_names_the_field(
    backend: str, model: str, input_usd: object, output_usd: object, field: str, words: str
) -> None:
    ctx = await owner_ctx()
    with pytest.raises(Invalid, match=words) as error:
        await pricing.set_price(ctx, model, input_usd, output_usd)  # type: ignore[arg-type]
    assert error.value.field == field
    assert await pricing.list_prices(ctx) == []


async def test_set_price_accepts_the_bounds(backend: str) -> None:
    ctx = await owner_ctx()
    await pricing.set_price(ctx, "openai/free", 0, "0")
    await pricing.set_price(ctx, "openai/dear", "10000", "10000.000000")
    assert {p.model: p.output_usd_per_mtok for p in await pricing.list_prices(ctx)} == {
        "openai/dear": Decimal("10000"),
        "openai/free": Decimal("0"),
    }


async def test_members_read_prices_but_only_admins_set_them(backend: str) -> None:
    ctx = await owner_ctx()
    await pricing.set_price(ctx, "openai/m", "1", "2")
    member, viewer, admin = (replace(ctx, role=role) for role in ("member", "viewer", "admin"))
    assert [p.model for p in await pricing.list_prices(member)] == ["openai/m"]
    with pytest.raises(Forbidden):
        await pricing.list_prices(viewer)
    with pytest.raises(Forbidden):
        await pricing.set_price(member, "openai/m", "9", "9")
    with pytest.raises(Forbidden):
        await pricing.delete_price(member, "openai/m")
    assert (await pricing.set_price(admin, "openai/m", "3", "4")).input_usd_per_mtok == Decimal("3")
