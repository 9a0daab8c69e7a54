"""The agent marketplace: a read-only catalog of templates, installed as agents.

The catalog is data (`catalog/<category>.yaml`, one file per category), loaded
once per process and checked as a whole when it loads: every template must pass
the agents service's own `validate`, slugs are unique, categories are known and
a template's prompt names exactly the tools it is given. A bad template
therefore fails the test suite, never a user's install.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlmodel import col, select

from atom_core.agents import service as agents
from atom_core.agents.models import Agent
from atom_core.agents.tools.builtins import TOOLS
from atom_core.context import Ctx
from atom_core.db import session_scope
from atom_core.errors import AtomError, Conflict, Invalid, NotFound
from atom_core.tenancy import permissions

CATALOG_DIR = Path(__file__).with_name("catalog")

CATEGORIES: dict[str, str] = {
    "data": "Data & analytics",
    "engineering": "Engineering",
    "finance": "Finance",
    "hr": "People & HR",
    "legal": "Legal & privacy",
    "marketing": "Marketing",
    "operations": "Operations",
    "product": "Product",
    "sales": "Sales",
    "security": "Security",
    "support": "Customer support",
}
"""Known categories (slug -> label shown to people). A template file naming any other category fails to load."""

NAME_MAX = 60
DESCRIPTION_MAX = 300
PERSONA_MAX = 400
PROMPT_MIN = 1200  # a template's prompt is the product: a one-liner is a bug
_FILLER = re.compile(r"\b(as an ai|as a language model|lorem ipsum)\b", re.IGNORECASE)
_REQUIRED = ("slug", "name", "description", "persona", "system_prompt", "temperature", "max_tokens")
_OPTIONAL = ("tools", "default_model")


class CatalogError(ValueError):
    """The catalog data is broken: a programming error, caught by the tests."""


@dataclass(frozen=True)
class Template:
    slug: str
    name: str
    description: str
    category: str
    persona: str
    system_prompt: str
    tools: tuple[str, ...] = ()
    default_model: str = agents.OFFLINE_MODEL
    temperature: float = 0.7
    max_tokens: int = 1024

    def agent_input(
        self, *, slug: str | None = None, name: str | None = None, model: str | None = None
    ) -> agents.AgentInput:
        """The agent this template installs as; `slug`, `name` and `model` override the template's."""
        return agents.AgentInput(
            slug=self.slug if slug is None else slug,
            name=self.name if name is None else name,
            description=self.description,
            category=self.category,
            model=self.default_model if model is None else model,
            system_prompt=self.system_prompt,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            tools=list(self.tools),
            template_slug=self.slug,
        )


@dataclass(frozen=True)
class Catalog:
    templates: tuple[Template, ...]  # ordered by category, then name
    by_slug: dict[str, Template]
    search_text: dict[str, str]  # slug -> lower-cased name, description, persona, category


# ------------------------------------------------------------------ loading


class _StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Safe YAML that refuses a key given twice (PyYAML would keep the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise CatalogError(f"line {key_node.start_mark.line + 1}: key {key!r} is given twice")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_catalog(directory: Path = CATALOG_DIR) -> Catalog:
    """Read and check every `*.yaml` file of `directory`; raises CatalogError naming the file, template and field."""
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise CatalogError(f"no catalog files (*.yaml) in {directory}")
    templates: list[Template] = []
    origin: dict[str, str] = {}
    for path in files:
        for template in _load_file(path):
            if template.slug in origin:
                raise CatalogError(
                    f"{path.name}: template slug '{template.slug}' is also used in {origin[template.slug]}"
                )
            origin[template.slug] = path.name
            templates.append(template)
    templates.sort(key=lambda t: (t.category, t.name.lower(), t.slug))
    search_text = {
        t.slug: "\n".join((t.name, t.description, t.persona, t.category, CATEGORIES[t.category])).lower()
        for t in templates
    }
    return Catalog(tuple(templates), {t.slug: t for t in templates}, search_text)


def _load_file(path: Path) -> list[Template]:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path.name}: not valid YAML ({exc})") from None
    except CatalogError as exc:
        raise CatalogError(f"{path.name}: {exc}") from None
    if not isinstance(data, dict) or set(data) != {"category", "templates"}:
        raise CatalogError(f"{path.name}: must be a mapping with exactly the keys 'category' and 'templates'")
    category = data["category"]
    if category not in CATEGORIES:
        raise CatalogError(f"{path.name}: unknown category {category!r}; known: {', '.join(CATEGORIES)}")
    if path.stem != category:
        raise CatalogError(f"{path.name}: the file of category '{category}' must be named {category}.yaml")
    entries = data["templates"]
    if not isinstance(entries, list) or not entries:
        raise CatalogError(f"{path.name}: 'templates' must be a non-empty list")
    return [_template(path.name, index, category, entry) for index, entry in enumerate(entries)]


def _template(file: str, index: int, category: str, entry: Any) -> Template:
    where = f"{file}: template #{index + 1}"
    if not isinstance(entry, dict):
        raise CatalogError(f"{where}: must be a mapping")
    if isinstance(entry.get("slug"), str):
        where = f"{file}: template '{entry['slug']}'"
    missing = [key for key in _REQUIRED if key not in entry]
    unknown = sorted(set(entry) - set(_REQUIRED) - set(_OPTIONAL))
    if missing:
        raise CatalogError(f"{where}: missing {', '.join(missing)}")
    if unknown:
        raise CatalogError(f"{where}: unknown keys {', '.join(unknown)} (allowed: {', '.join(_REQUIRED + _OPTIONAL)})")
    for key in ("name", "description", "persona", "system_prompt"):
        if not isinstance(entry[key], str) or not entry[key].strip():
            raise CatalogError(f"{where}: {key} must be non-empty text")
    tools = entry.get("tools", [])
    if not isinstance(tools, list):
        raise CatalogError(f"{where}: tools must be a list")
    template = Template(
        slug=entry["slug"],
        name=entry["name"].strip(),
        description=" ".join(entry["description"].split()),
        category=category,
        persona=" ".join(entry["persona"].split()),
        system_prompt=entry["system_prompt"].strip(),
        tools=tuple(tools),
        default_model=entry.get("default_model", agents.OFFLINE_MODEL),
        temperature=entry["temperature"],
        max_tokens=entry["max_tokens"],
    )
    try:
        agents.validate(template.agent_input())
    except AtomError as exc:
        raise CatalogError(f"{where}: {exc.field or 'template'}: {exc.message}") from None
    _check_quality(where, template)
    return template


def _check_quality(where: str, t: Template) -> None:
    """Rules beyond the agents service's: what makes a template worth installing."""
    limits = (
        ("name", t.name, NAME_MAX),
        ("description", t.description, DESCRIPTION_MAX),
        ("persona", t.persona, PERSONA_MAX),
    )
    for key, value, limit in limits:
        if len(value) > limit:
            raise CatalogError(f"{where}: {key} must be at most {limit} characters (it has {len(value)})")
    if not t.description.endswith("."):
        raise CatalogError(f"{where}: description must be one or two full sentences")
    if len(t.system_prompt) < PROMPT_MIN:
        raise CatalogError(f"{where}: system_prompt must be at least {PROMPT_MIN} characters of real guidance")
    filler = _FILLER.search(f"{t.persona}\n{t.system_prompt}")
    if filler:
        raise CatalogError(f"{where}: remove the filler {filler.group(0)!r}")
    # The prompt must say when to use each tool it has, and never mention one it lacks.
    mentioned = {name for name in TOOLS.names() if re.search(rf"\b{re.escape(name)}\b", t.system_prompt)}
    lacking, unused = sorted(mentioned - set(t.tools)), sorted(set(t.tools) - mentioned)
    if lacking:
        raise CatalogError(f"{where}: system_prompt mentions tools it does not have: {', '.join(lacking)}")
    if unused:
        raise CatalogError(f"{where}: system_prompt never says when to use: {', '.join(unused)}")


_catalog: Catalog | None = None
_lock = threading.Lock()


def catalog() -> Catalog:
    """The packaged catalog, loaded on first use and kept for the life of the process."""
    global _catalog
    if _catalog is None:
        with _lock:
            if _catalog is None:
                _catalog = load_catalog()
    return _catalog


async def preload() -> Catalog:
    """`catalog()` for async callers: the first load reads files, so it runs off the event loop."""
    return _catalog if _catalog is not None else await asyncio.to_thread(catalog)


# ------------------------------------------------------------------ browsing


def check_category(category: str) -> str:
    key = category.strip().lower()
    if key not in CATEGORIES:
        raise Invalid(f"unknown category '{category[:40]}'; choose one of: {', '.join(CATEGORIES)}", field="category")
    return key


def list_templates(category: str | None = None, q: str | None = None) -> list[Template]:
    """Templates ordered by category, then name. `q` matches name, description, persona and
    category, case-insensitively; with several words, a template must contain each of them."""
    current = catalog()
    found: list[Template] = list(current.templates)
    if category and category.strip():
        key = check_category(category)
        found = [t for t in found if t.category == key]
    terms = q.lower().split() if q else []
    if terms:
        found = [t for t in found if all(term in current.search_text[t.slug] for term in terms)]
    return found


def categories() -> list[tuple[str, int]]:
    """(category, number of templates) for every category that has templates, by category."""
    counts = Counter(t.category for t in catalog().templates)
    return sorted(counts.items())


def get_template(slug: str) -> Template:
    template = catalog().by_slug.get(slug) if isinstance(slug, str) else None
    if template is None:
        raise NotFound(f"no template '{str(slug)[:80]}' in the marketplace", field="template_slug")
    return template


# ---------------------------------------------------------------- installing


async def install(
    ctx: Ctx, template_slug: str, *, slug: str | None = None, name: str | None = None, model: str | None = None
) -> Agent:
    """Create an agent in the caller's tenant from a template (needs `agents.write`).

    The agent's slug defaults to the template's; if the tenant already has an
    agent with that slug, the Conflict says which slug to pass instead.
    """
    permissions.require(ctx, "agents.write")
    await preload()
    template = get_template(template_slug)
    data = template.agent_input(slug=slug, name=name, model=model)
    try:
        return await agents.create_agent(ctx, data)
    except Conflict:
        free = await _free_slug(ctx, data.slug)
        raise Conflict(
            f"an agent with slug '{data.slug}' already exists in this workspace; "
            f"install the template again with another slug, for example '{free}'",
            field="slug",
        ) from None


async def installed_templates(ctx: Ctx) -> dict[str, int]:
    """How many agents of this tenant came from each template (template slug -> count)."""
    permissions.require(ctx, "agents.read")
    query = select(Agent.template_slug).where(Agent.tenant_id == ctx.tenant_id, col(Agent.template_slug).is_not(None))
    async with session_scope(ctx, readonly=True) as session:
        rows = (await session.exec(query)).all()
    return dict(Counter(row for row in rows if row))


async def _free_slug(ctx: Ctx, taken_slug: str) -> str:
    """The first of `<slug>-2`, `<slug>-3`, … that no agent of the tenant uses (a suggestion, not a reservation)."""
    query = select(Agent.slug).where(Agent.tenant_id == ctx.tenant_id, col(Agent.slug).startswith(taken_slug[:50]))
    async with session_scope(ctx, readonly=True) as session:
        taken = set((await session.exec(query)).all())
    number = 2
    while True:
        suffix = f"-{number}"
        candidate = taken_slug[: 63 - len(suffix)].rstrip("-") + suffix
        if candidate not in taken:
            return candidate
        number += 1
