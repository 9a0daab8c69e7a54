"""State of /marketplace: the template catalog filtered by category and search, a
template's detail, and installing it (after a confirmation) as an agent.

The catalog is a few dozen templates, so the cards carry only what a card shows;
the full prompt is read when a template's detail opens.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import reflex as rx

from atom_core.agents import marketplace
from atom_core.errors import AtomError
from atom_core.llm import OFFLINE_MODEL
from atom_ui.session import current_ctx, user_message
from atom_ui.state import AuthState
from atom_ui.states.agents import model_label

ALL = "all"  # the category select's "every category" value (Radix items cannot have an empty value)
QUERY_MAX = 100


@dataclass
class TemplateCard:
    slug: str = ""
    name: str = ""
    description: str = ""
    category: str = ""
    category_label: str = ""
    tools: list[str] = field(default_factory=list)
    model_label: str = ""
    offline: bool = False
    installed: int = 0


@dataclass
class CardGroup:
    category: str = ""
    label: str = ""
    cards: list[TemplateCard] = field(default_factory=list)


@dataclass
class CategoryOption:
    value: str = ""
    label: str = ""


@dataclass
class TemplateDetail:
    slug: str = ""
    name: str = ""
    description: str = ""
    category_label: str = ""
    persona: str = ""
    system_prompt: str = ""
    tools: list[str] = field(default_factory=list)
    model: str = ""
    model_label: str = ""
    offline: bool = False
    temperature: float = 0.0
    max_tokens: int = 0


def template_card(template: marketplace.Template, installed: Mapping[str, int]) -> TemplateCard:
    return TemplateCard(
        slug=template.slug,
        name=template.name,
        description=template.description,
        category=template.category,
        category_label=marketplace.CATEGORIES[template.category],
        tools=list(template.tools),
        model_label=model_label(template.default_model),
        offline=template.default_model == OFFLINE_MODEL,
        installed=installed.get(template.slug, 0),
    )


def template_detail(template: marketplace.Template) -> TemplateDetail:
    return TemplateDetail(
        slug=template.slug,
        name=template.name,
        description=template.description,
        category_label=marketplace.CATEGORIES[template.category],
        persona=template.persona,
        system_prompt=template.system_prompt,
        tools=list(template.tools),
        model=template.default_model,
        model_label=model_label(template.default_model),
        offline=template.default_model == OFFLINE_MODEL,
        temperature=template.temperature,
        max_tokens=template.max_tokens,
    )


def group_cards(templates: Iterable[marketplace.Template], installed: Mapping[str, int]) -> list[CardGroup]:
    """Cards under one heading per category, in the catalog's order (category, then name)."""
    groups: list[CardGroup] = []
    for template in templates:
        if not groups or groups[-1].category != template.category:
            groups.append(CardGroup(template.category, marketplace.CATEGORIES[template.category], []))
        groups[-1].cards.append(template_card(template, installed))
    return groups


def category_options() -> list[CategoryOption]:
    """The category select: every category, then each one with its number of templates."""
    counts = marketplace.categories()
    total = sum(count for _, count in counts)
    options = [CategoryOption(ALL, f"All categories ({total})")]
    options += [CategoryOption(name, f"{marketplace.CATEGORIES[name]} ({count})") for name, count in counts]
    return options


def search(category: str, query: str) -> list[marketplace.Template]:
    """The templates shown for a category select value and a search box text."""
    return marketplace.list_templates(category=None if category == ALL else category, q=query.strip()[:QUERY_MAX])


class MarketplaceState(rx.State):
    """The catalog page."""

    query: str = ""
    category: str = ALL
    categories: list[CategoryOption] = []
    groups: list[CardGroup] = []
    result_count: int = 0
    installed: dict[str, int] = {}
    loading: bool = False
    loaded: bool = False
    error: str = ""
    loaded_tenant: str = ""

    detail_open: bool = False
    detail: TemplateDetail = TemplateDetail()

    confirm_open: bool = False
    install_slug: str = ""
    install_error: str = ""
    installing: bool = False
    installed_agent_slug: str = ""  # the agent just made from the open template, for the link

    @rx.var
    def no_results(self) -> bool:
        return self.loaded and not self.error and self.result_count == 0

    @rx.var
    def detail_installed(self) -> int:
        return self.installed.get(self.detail.slug, 0)

    # ---------------------------------------------------------------- browsing

    @rx.event
    async def load(self):
        """on_load: the catalog (read from disk off the event loop, once per process) and what is installed.
        A dialog left open when the user navigated away stays closed on return."""
        self.detail_open = False
        self.loading = True
        self.error = ""
        yield
        await self._load()

    @rx.event
    async def reload_if_tenant_changed(self):
        """on_mount of a marker keyed on the tenant: "installed" badges belong to a workspace."""
        auth = await self.get_state(AuthState)
        if auth.tenant_id and auth.tenant_id != self.loaded_tenant and not self.loading:
            self.detail_open = False
            self.loading = True
            yield
            await self._load()

    async def _load(self) -> None:
        try:
            await marketplace.preload()
            self.categories = category_options()
            ctx = await current_ctx(self)
            self.installed = await marketplace.installed_templates(ctx)
            self.loaded_tenant = str(ctx.tenant_id)
            self._refresh()
        except Exception as err:
            self.error = user_message(err)
        self.loading = False
        self.loaded = True

    @rx.event
    def set_query(self, value: str):
        self.query = value[:QUERY_MAX]
        self._refresh()

    @rx.event
    def clear_search(self):
        self.query = ""
        self.category = ALL
        self._refresh()

    @rx.event
    def set_category(self, value: str):
        self.category = value
        self._refresh()

    def _refresh(self) -> None:
        try:
            templates = search(self.category, self.query)
        except AtomError as err:  # an unknown category from a stale page
            self.category = ALL
            self.error = user_message(err)
            return
        self.groups = group_cards(templates, self.installed)
        self.result_count = len(templates)
        self.error = ""

    # ------------------------------------------------------------------ detail

    @rx.event
    def open_detail(self, slug: str):
        try:
            template = marketplace.get_template(slug)
        except AtomError as err:
            return rx.toast.error(user_message(err))
        self.detail = template_detail(template)
        self.installed_agent_slug = ""
        self.detail_open = True
        return None

    @rx.event
    def set_detail_open(self, open: bool):
        if not open and self.installing:
            return
        self.detail_open = open
        if not open:
            self.confirm_open = False

    # --------------------------------------------------------------- installing

    @rx.event
    def ask_install(self):
        self.install_slug = self.detail.slug
        self.install_error = ""
        self.installing = False
        self.confirm_open = True

    @rx.event
    def set_confirm_open(self, open: bool):
        if not open and self.installing:
            return
        self.confirm_open = open

    @rx.event
    def set_install_slug(self, value: str):
        self.install_slug = value[:63]
        self.install_error = ""

    @rx.event
    async def confirm_install(self):
        self.installing = True
        self.install_error = ""
        yield
        try:
            ctx = await current_ctx(self)
            agent = await marketplace.install(ctx, self.detail.slug, slug=self.install_slug.strip() or None)
        except Exception as err:
            self.installing = False
            self.install_error = user_message(err)
            return
        self.installed = {**self.installed, self.detail.slug: self.installed.get(self.detail.slug, 0) + 1}
        self.installed_agent_slug = agent.slug
        self.installing = False
        self.confirm_open = False
        self._refresh()
        yield rx.toast.success(
            f"Installed '{agent.name}' as agent '{agent.slug}'.",
            action={"label": "Open agent", "on_click": rx.redirect(f"/agents?agent={agent.slug}")},
        )
