"""Marketplace: browse the template catalog and install templates as agents."""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends, Query
from pydantic import BaseModel, Field

from atom_core.agents import marketplace
from atom_core.context import Ctx
from atom_core.interfaces.api.deps import current_ctx
from atom_core.interfaces.api.routers.agents import AgentOut, _out
from atom_core.interfaces.api.schemas import Request

router = APIRouter(prefix="/api/v1/marketplace", tags=["marketplace"])


class TemplateOut(BaseModel):
    slug: str
    name: str
    description: str
    category: str
    persona: str
    tools: list[str]
    default_model: str
    system_prompt: str
    temperature: float
    max_tokens: int
    installed_count: int = Field(description="How many agents of your tenant were installed from this template")


class CategoryOut(BaseModel):
    category: str
    label: str
    count: int


class MarketplaceOut(BaseModel):
    items: list[TemplateOut]
    categories: list[CategoryOut] = Field(description="Every category of the catalog, whatever the filters")


class InstallIn(Request):
    slug: str | None = Field(None, max_length=63, description="The agent's slug; defaults to the template's")
    name: str | None = Field(None, max_length=100, description="The agent's name; defaults to the template's")
    model: str | None = Field(None, max_length=200, description="A LiteLLM model string; defaults to the template's")


def _template_out(template: marketplace.Template, installed: dict[str, int]) -> TemplateOut:
    return TemplateOut(
        slug=template.slug,
        name=template.name,
        description=template.description,
        category=template.category,
        persona=template.persona,
        tools=list(template.tools),
        default_model=template.default_model,
        system_prompt=template.system_prompt,
        temperature=template.temperature,
        max_tokens=template.max_tokens,
        installed_count=installed.get(template.slug, 0),
    )


@router.get("", response_model=MarketplaceOut)
async def browse(
    ctx: Ctx = Depends(current_ctx),
    category: str | None = Query(None, max_length=40),
    q: str | None = Query(None, max_length=100),
) -> MarketplaceOut:
    await marketplace.preload()
    templates = marketplace.list_templates(category=category, q=q)
    installed = await marketplace.installed_templates(ctx)
    return MarketplaceOut(
        items=[_template_out(t, installed) for t in templates],
        categories=[
            CategoryOut(category=name, label=marketplace.CATEGORIES[name], count=count)
            for name, count in marketplace.categories()
        ],
    )


@router.get("/{template_slug}", response_model=TemplateOut)
async def get_template(template_slug: str, ctx: Ctx = Depends(current_ctx)) -> TemplateOut:
    await marketplace.preload()
    template = marketplace.get_template(template_slug)
    return _template_out(template, await marketplace.installed_templates(ctx))


@router.post("/{template_slug}/install", status_code=201, response_model=AgentOut)
async def install(template_slug: str, body: InstallIn | None = Body(None), ctx: Ctx = Depends(current_ctx)) -> AgentOut:
    options = body or InstallIn()
    agent = await marketplace.install(ctx, template_slug, slug=options.slug, name=options.name, model=options.model)
    return _out(agent)
