"""Model prices: the tenant's overrides, else litellm's price map; costs in integer micro-dollars.

Prices are USD per million tokens, held as `Decimal` from end to end (never
float). Because a price per million tokens times a token count *is* a number
of micro-dollars, `cost_micros` multiplies exactly and rounds once, half up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from typing import Any, Literal

from sqlalchemy.exc import IntegrityError
from sqlmodel import func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from atom_core.context import Ctx
from atom_core.db import session_scope, utcnow
from atom_core.errors import Conflict, Invalid, NotFound
from atom_core.governance import audit
from atom_core.llm import OFFLINE_MODEL, config_cache, engine
from atom_core.llm.models import PRICE_SCALE, ModelPrice
from atom_core.llm.providers import MODEL_RE
from atom_core.tenancy import permissions

MAX_USD_PER_MTOK = Decimal(10_000)  # dearer than any model sold today, by far: above it is a typo
MAX_PRICES_PER_TENANT = 1000
_QUANTUM = Decimal(1).scaleb(-PRICE_SCALE)
_MTOK = Decimal(1_000_000)

PriceSource = Literal["tenant", "litellm", "offline"]


@dataclass(frozen=True)
class Price:
    input_usd_per_mtok: Decimal
    output_usd_per_mtok: Decimal
    source: PriceSource


@dataclass(frozen=True)
class ModelPriceInfo:
    model: str
    input_usd_per_mtok: Decimal
    output_usd_per_mtok: Decimal
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: ModelPrice) -> ModelPriceInfo:
        return cls(row.model, row.input_usd_per_mtok, row.output_usd_per_mtok, row.created_at, row.updated_at)


OFFLINE_PRICE = Price(Decimal(0), Decimal(0), "offline")


# --- looking prices up --------------------------------------------------------------------


async def price_for(ctx: Ctx, model: str) -> Price | None:
    """The tenant's override, else litellm's price, else None (unknown: cost 0, flagged by the caller)."""
    if model == OFFLINE_MODEL:
        return OFFLINE_PRICE
    async with session_scope(ctx, readonly=True) as session:
        row = await _load(session, ctx, model)
    if row is not None:
        return Price(row.input_usd_per_mtok, row.output_usd_per_mtok, "tenant")
    module = await engine.load()
    return litellm_price(module.model_cost, model)


def litellm_price(cost_map: Mapping[str, Any], model: str) -> Price | None:
    """The price of `model` in litellm's map, whose keys come with or without provider prefix.

    "openai/gpt-4o-mini" matches the key "gpt-4o-mini" only if that entry is
    OpenAI's: the same name behind another provider (openrouter/…) is another price.
    """
    entry = cost_map.get(model) if model != "sample_spec" else None
    if entry is None and "/" in model:
        provider, name = model.split("/", 1)
        candidate = cost_map.get(name)
        if isinstance(candidate, Mapping) and _same_provider(str(candidate.get("litellm_provider", "")), provider):
            entry = candidate
    if not isinstance(entry, Mapping):
        return None
    input_cost = _per_mtok(entry.get("input_cost_per_token"))
    output_cost = _per_mtok(entry.get("output_cost_per_token", 0))
    if input_cost is None or output_cost is None:
        return None
    return Price(input_cost, output_cost, "litellm")


def _same_provider(entry_provider: str, provider: str) -> bool:
    # litellm files some entries under sub-kinds: "vertex_ai-language-models", "bedrock_converse".
    return entry_provider == provider or entry_provider.startswith((f"{provider}-", f"{provider}_"))


def _per_mtok(per_token: object) -> Decimal | None:
    if isinstance(per_token, bool) or not isinstance(per_token, int | float):
        return None
    value = Decimal(str(per_token)) * _MTOK  # str(): the shortest decimal that is this float, exactly
    if not value.is_finite() or value < 0:
        return None
    return _plain(value)


def _plain(value: Decimal) -> Decimal:
    """Trailing zeros off, without turning 100 into 1E+2."""
    value = value.normalize()
    return value.quantize(Decimal(1)) if value.as_tuple().exponent > 0 else value


def cost_micros(price: Price | None, prompt_tokens: int, completion_tokens: int) -> int:
    """Integer micro-dollars: tokens x USD per Mtok, summed exactly, rounded half up once."""
    if price is None:
        return 0
    if prompt_tokens < 0 or completion_tokens < 0:
        raise ValueError("token counts cannot be negative")
    with localcontext() as context:
        context.prec = 60  # no intermediate rounding, whatever the token counts
        total = (
            Decimal(prompt_tokens) * price.input_usd_per_mtok + Decimal(completion_tokens) * price.output_usd_per_mtok
        )
        return int(total.quantize(Decimal(1), rounding=ROUND_HALF_UP))


# --- tenant overrides ---------------------------------------------------------------------


def check_model(model: str) -> str:
    if not isinstance(model, str) or not MODEL_RE.match(model):
        raise Invalid(
            "model must be a LiteLLM model string like 'openai/my-model' (letters, digits and ._:/@+-, "
            "at most 200 characters)",
            field="model",
        )
    if model == OFFLINE_MODEL:
        raise Invalid("the offline model is always free: its price cannot be set", field="model")
    return model


def check_price(value: object, field: str) -> Decimal:
    """A price in USD per million tokens: 0 to MAX_USD_PER_MTOK, at most 6 decimal places."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float | str):
        raise Invalid(f"{field} must be a number (USD per million tokens)", field=field)
    try:
        price = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise Invalid(f"{field} must be a number (USD per million tokens)", field=field) from None
    if not price.is_finite():
        raise Invalid(f"{field} must be a finite number", field=field)
    if price < 0:
        raise Invalid(f"{field} must not be negative", field=field)
    if price > MAX_USD_PER_MTOK:
        raise Invalid(f"{field} must be at most {MAX_USD_PER_MTOK} USD per million tokens", field=field)
    if price.quantize(_QUANTUM) != price:
        raise Invalid(f"{field} must have at most {PRICE_SCALE} decimal places", field=field)
    return price.quantize(_QUANTUM)


async def set_price(
    ctx: Ctx, model: str, input_usd_per_mtok: Decimal | int | str, output_usd_per_mtok: Decimal | int | str
) -> ModelPriceInfo:
    """Create or replace the tenant's price for `model` (USD per million tokens)."""
    permissions.require(ctx, "providers.manage")
    model = check_model(model)
    input_price = check_price(input_usd_per_mtok, "input_usd_per_mtok")
    output_price = check_price(output_usd_per_mtok, "output_usd_per_mtok")
    try:
        return await _upsert(ctx, model, input_price, output_price)
    except IntegrityError:  # another admin created the same price just now: replace theirs
        try:
            return await _upsert(ctx, model, input_price, output_price)
        except IntegrityError:
            raise Conflict(f"the price of '{model}' was changed at the same time; try again", field="model") from None


async def _upsert(ctx: Ctx, model: str, input_price: Decimal, output_price: Decimal) -> ModelPriceInfo:
    async with session_scope(ctx) as session:
        row = await _load(session, ctx, model)
        created = row is None
        if row is None:
            count_query = select(func.count()).select_from(ModelPrice).where(ModelPrice.tenant_id == ctx.tenant_id)
            if (await session.exec(count_query)).one() >= MAX_PRICES_PER_TENANT:
                raise Invalid(
                    f"a tenant can override at most {MAX_PRICES_PER_TENANT} model prices; delete some first",
                    field="model",
                )
            row = ModelPrice(
                tenant_id=ctx.tenant_id, model=model, input_usd_per_mtok=input_price, output_usd_per_mtok=output_price
            )
        row.input_usd_per_mtok, row.output_usd_per_mtok = input_price, output_price
        row.updated_at = utcnow()
        session.add(row)
        await session.flush()
        details = {"model": model, "input_usd_per_mtok": str(input_price), "output_usd_per_mtok": str(output_price)}
        action = "model_price.created" if created else "model_price.updated"
        audit.record(session, ctx, action, f"model_price:{row.id}", details)
    config_cache.forget(ctx.tenant_id)
    return ModelPriceInfo.of(row)


async def list_prices(ctx: Ctx) -> list[ModelPriceInfo]:
    """The tenant's overrides, by model name (at most MAX_PRICES_PER_TENANT, so no paging)."""
    permissions.require(ctx, "providers.read")
    query = select(ModelPrice).where(ModelPrice.tenant_id == ctx.tenant_id).order_by(ModelPrice.model)
    async with session_scope(ctx, readonly=True) as session:
        return [ModelPriceInfo.of(row) for row in (await session.exec(query)).all()]


async def delete_price(ctx: Ctx, model: str) -> None:
    permissions.require(ctx, "providers.manage")
    async with session_scope(ctx) as session:
        row = await _load(session, ctx, model)
        if row is None:
            raise NotFound("this tenant has no price override for that model", field="model")
        await session.delete(row)
        audit.record(session, ctx, "model_price.deleted", f"model_price:{row.id}", {"model": row.model})
    config_cache.forget(ctx.tenant_id)


async def _load(session: AsyncSession, ctx: Ctx, model: str) -> ModelPrice | None:
    query = select(ModelPrice).where(ModelPrice.tenant_id == ctx.tenant_id, ModelPrice.model == model)
    return (await session.exec(query)).first()
