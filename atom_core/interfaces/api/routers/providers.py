"""Model providers (per-tenant credentials, write-only keys) and model price overrides."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel, Field, PlainSerializer

from atom_core.context import Ctx
from atom_core.interfaces.api.deps import current_ctx
from atom_core.interfaces.api.schemas import ListOut, Request
from atom_core.llm import pricing, providers

router = APIRouter(prefix="/api/v1", tags=["providers"])

# JSON numbers, not strings. Prices have at most 6 decimals and at most
# 10,000 USD (11 significant digits), so the float's shortest form is the exact decimal.
Money = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]
ProviderName = Annotated[str, Path(max_length=64, description="A LiteLLM provider prefix: openai, anthropic, …")]
ModelName = Annotated[str, Path(max_length=200, description="The full LiteLLM model string; may contain '/'")]


class ProviderIn(Request):
    api_key: str | None = Field(
        None, max_length=providers.API_KEY_MAX, description="Write-only. Omit to keep the stored key; null removes it."
    )
    api_base: str | None = Field(
        None, max_length=providers.API_BASE_MAX, description="http(s) URL. Omit to keep; null or '' removes it."
    )


class ProviderOut(BaseModel):
    provider: str
    api_key_set: bool
    api_key_hint: str | None = Field(description="The last 4 characters of the key, e.g. '…a1b2'")
    api_base: str | None
    updated_at: datetime


class ProviderTestIn(Request):
    model: str | None = Field(None, max_length=200, description="Default: a small model of the provider")


class ProviderTestOut(BaseModel):
    ok: bool
    latency_ms: int
    error: str | None = None


class ModelPriceIn(Request):
    input_usd_per_mtok: Decimal = Field(description="USD per million input tokens (a number or a decimal string)")
    output_usd_per_mtok: Decimal = Field(description="USD per million output tokens")


class ModelPriceOut(BaseModel):
    model: str
    input_usd_per_mtok: Money
    output_usd_per_mtok: Money
    created_at: datetime
    updated_at: datetime


@router.get("/providers", response_model=ListOut[ProviderOut])
async def list_providers(ctx: Ctx = Depends(current_ctx)) -> ListOut[ProviderOut]:
    return ListOut[ProviderOut](items=[ProviderOut(**asdict(p)) for p in await providers.list_providers(ctx)])


@router.put("/providers/{provider}", response_model=ProviderOut)
async def set_provider(provider: ProviderName, body: ProviderIn, ctx: Ctx = Depends(current_ctx)) -> ProviderOut:
    fields = body.model_dump(include=body.model_fields_set)  # an omitted field keeps its stored value
    return ProviderOut(**asdict(await providers.set_provider(ctx, provider, **fields)))


@router.delete("/providers/{provider}", status_code=204)
async def delete_provider(provider: ProviderName, ctx: Ctx = Depends(current_ctx)) -> Response:
    await providers.delete_provider(ctx, provider)
    return Response(status_code=204)


@router.post("/providers/{provider}/test", response_model=ProviderTestOut, response_model_exclude_none=True)
async def test_provider(
    provider: ProviderName, body: ProviderTestIn | None = None, ctx: Ctx = Depends(current_ctx)
) -> ProviderTestOut:
    result = await providers.test_provider(ctx, provider, body.model if body else None)
    return ProviderTestOut(**asdict(result))


@router.get("/model-prices", response_model=ListOut[ModelPriceOut])
async def list_model_prices(ctx: Ctx = Depends(current_ctx)) -> ListOut[ModelPriceOut]:
    return ListOut[ModelPriceOut](items=[ModelPriceOut(**asdict(p)) for p in await pricing.list_prices(ctx)])


@router.put("/model-prices/{model:path}", response_model=ModelPriceOut)
async def set_model_price(model: ModelName, body: ModelPriceIn, ctx: Ctx = Depends(current_ctx)) -> ModelPriceOut:
    price = await pricing.set_price(ctx, model, body.input_usd_per_mtok, body.output_usd_per_mtok)
    return ModelPriceOut(**asdict(price))


@router.delete("/model-prices/{model:path}", status_code=204)
async def delete_model_price(model: ModelName, ctx: Ctx = Depends(current_ctx)) -> Response:
    await pricing.delete_price(ctx, model)
    return Response(status_code=204)
