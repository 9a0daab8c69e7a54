"""The agent marketplace: the catalog's quality rules, browsing, installing, roles,
two-tenant isolation and the demo seed, on both backends."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from atom_core.agents import marketplace
from atom_core.agents import service as agents
from atom_core.agents.tools.builtins import TOOLS
from atom_core.seed import DEMO_TEMPLATES, seed_demo
from atom_core.tenancy import service as tenancy

# ------------------------------------------------------------------ the catalog


def test_catalog_is_large_varied_and_every_template_validates() -> None:
    templates = marketplace.list_templates()
    assert len(templates) >= 30
    counts = dict(marketplace.categories())
    assert len(counts) >= 8
    assert sum(counts.values()) == len(templates)
    assert set(counts) <= set(marketplace.CATEGORIES)
    assert len({t.slug for t in templates}) == len(templates)
    assert [(t.category, t.name.lower()) for t in templates] == sorted((t.category, t.name.lower()) for t in templates)
    for template in templates:
        checked = agents.validate(template.agent_input())  # the agents service's own rules
        assert checked.template_slug == template.slug
        assert set(template.tools) <= set(TOOLS.names()), template.slug
        assert template.default_model == agents.OFFLINE_MODEL, template.slug
        assert len(template.system_prompt) >= marketplace.PROMPT_MIN, template.slug
    # Tools are given where they help, not everywhere.
    assert 0 < sum(bool(t.tools) for t in templates) < len(templates)


def _write_catalog(directory: Path, category: str, templates: str) -> Path:
    directory.mkdir(exist_ok=True)
    (directory / f"{category}.yaml").write_text(f"category: {category}\ntemplates:\n{templates}", encoding="utf-8")
    return directory


def _template_yaml(slug: str = "good-one", tools: str = "[]", prompt_extra: str = "", **fields: str) -> str:
    prompt = ("Follow these steps carefully and report clearly. " * 30) + prompt_extra
    values = {
        "slug": slug,
        "name": "Good One",
        "description": "Does one thing well.",
        "persona": "A careful helper.",
        "temperature": "0.2",
        "max_tokens": "512",
        "tools": tools,
        "system_prompt": f"'{prompt}'",
    } | fields
    lines = [f"    {key}: {value}" for key, value in values.items()]
    return "  - " + "\n".join(lines).lstrip() + "\n"


def test_a_valid_catalog_file_loads(tmp_path: Path) -> None:
    directory = _write_catalog(tmp_path / "ok", "data", _template_yaml(tools="[calculator]", prompt_extra="calculator"))
    loaded = marketplace.load_catalog(directory)
    assert [(t.slug, t.category, t.tools) for t in loaded.templates] == [("good-one", "data", ("calculator",))]


@pytest.mark.parametrize(
    ("category", "entries", "expected"),
    [
        ("data", _template_yaml(tools="[shell]"), "tools: unknown tool: shell"),
        ("data", _template_yaml(slug="Bad_Slug"), "slug:"),
        ("data", _template_yaml(temperature="3"), "temperature"),
        ("data", _template_yaml() + _template_yaml(), "good-one' is also used"),
        ("astrology", _template_yaml(), "unknown category 'astrology'"),
        ("data", _template_yaml(tools="[calculator]"), "never says when to use: calculator"),
        ("data", _template_yaml(prompt_extra="use http_get"), "mentions tools it does not have: http_get"),
        ("data", _template_yaml(system_prompt="'Be helpful.'"), "at least"),
        ("data", _template_yaml(description="'no full stop'"), "description"),
        ("data", _template_yaml(colour="blue"), "unknown keys colour"),
        ("data", _template_yaml(prompt_extra="As an AI I help."), "filler"),
        ("data", _template_yaml(name="A\n    name: B"), "given twice"),
    ],
)
def test_a_bad_template_fails_at_load_naming_the_problem(
    tmp_path: Path, category: str, entries: str, expected: str
) -> None:
    directory = _write_catalog(tmp_path / "bad", category, entries)
    with pytest.raises(marketplace.CatalogError) as caught:
        marketplace.load_catalog(directory)
    assert expected in str(caught.value)
    assert f"{category}.yaml" in str(caught.value)


# ------------------------------------------------------------------- browsing


async def test_browse_lists_every_template_with_its_fields(client: httpx.AsyncClient, make_account) -> None:
    owner = await make_account()
    response = await client.get("/api/v1/marketplace", headers=owner.headers)
    assert response.status_code == 200
    body = response.json()
    assert len(body["items"]) == len(marketplace.list_templates()) >= 30
    assert sum(c["count"] for c in body["categories"]) == len(body["items"])
    reviewer = next(item for item in body["items"] if item["slug"] == "code-reviewer")
    template = marketplace.get_template("code-reviewer")
    assert reviewer == {
        "slug": "code-reviewer",
        "name": template.name,
        "description": template.description,
        "category": "engineering",
        "persona": template.persona,
        "tools": list(template.tools),
        "default_model": "atom/offline",
        "system_prompt": template.system_prompt,
        "temperature": template.temperature,
        "max_tokens": template.max_tokens,
        "installed_count": 0,
    }


async def test_browse_by_category_and_search(client: httpx.AsyncClient, make_account) -> None:
    owner = await make_account()

    async def browse(**params: str) -> httpx.Response:
        return await client.get("/api/v1/marketplace", params=params, headers=owner.headers)

    security = (await browse(category="Security")).json()
    names = [item["name"] for item in security["items"]]
    assert {item["category"] for item in security["items"]} == {"security"}
    assert names == sorted(names, key=str.lower)
    assert len(names) == dict(marketplace.categories())["security"]
    assert len(security["categories"]) == len(marketplace.categories())  # the facets ignore the filter

    assert "sql-assistant" in [item["slug"] for item in (await browse(q="SQL")).json()["items"]]
    # Every word must match somewhere (name, description, persona or category).
    both = [item["slug"] for item in (await browse(q="incident timeline")).json()["items"]]
    assert both == ["sre-on-call-assistant"]
    in_category = (await browse(category="finance", q="invoice")).json()["items"]
    assert [item["slug"] for item in in_category] == ["accounts-payable-assistant"]
    assert (await browse(q="zzz-no-such-thing")).json()["items"] == []
    assert len((await browse(category="", q="")).json()["items"]) == len(
        marketplace.list_templates()
    )  # `?category=&q=`

    unknown = await browse(category="astrology")
    assert unknown.status_code == 422
    assert unknown.json()["error"]["field"] == "category"


async def test_unknown_template_is_404_naming_the_template(client: httpx.AsyncClient, make_account) -> None:
    owner = await make_account()
    found = await client.get("/api/v1/marketplace/data-analyst", headers=owner.headers)
    assert found.status_code == 200
    assert found.json()["category"] == "data"
    for response in (
        await client.get("/api/v1/marketplace/no-such-template", headers=owner.headers),
        await client.post("/api/v1/marketplace/no-such-template/install", headers=owner.headers),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["field"] == "template_slug"
    assert (await client.get("/api/v1/agents", headers=owner.headers)).json()["items"] == []


async def test_marketplace_needs_authentication(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/marketplace")).status_code == 401
    assert (await client.get("/api/v1/marketplace/code-reviewer")).status_code == 401
    assert (await client.post("/api/v1/marketplace/code-reviewer/install")).status_code == 401


# ----------------------------------------------------------------- installing


async def test_install_creates_an_agent_from_the_template(client: httpx.AsyncClient, make_account) -> None:
    owner = await make_account()
    installed = await client.post("/api/v1/marketplace/vulnerability-triage/install", headers=owner.headers)
    assert installed.status_code == 201, installed.text
    agent = installed.json()
    template = marketplace.get_template("vulnerability-triage")
    assert agent["slug"] == agent["template_slug"] == "vulnerability-triage"
    assert (agent["name"], agent["category"], agent["system_prompt"]) == (
        template.name,
        "security",
        template.system_prompt,
    )
    assert agent["tools"] == list(template.tools)
    assert agent["model"] == "atom/offline"
    assert agent["model_label"] == "offline model (no provider)"
    assert (agent["temperature"], agent["max_tokens"]) == (template.temperature, template.max_tokens)

    listed = (await client.get("/api/v1/agents", headers=owner.headers)).json()["items"]
    assert [(a["id"], a["template_slug"]) for a in listed] == [(agent["id"], "vulnerability-triage")]
    detail = (await client.get("/api/v1/marketplace/vulnerability-triage", headers=owner.headers)).json()
    assert detail["installed_count"] == 1


async def test_installing_twice_conflicts_on_slug_and_another_slug_works(
    client: httpx.AsyncClient, make_account
) -> None:
    owner = await make_account()
    url = "/api/v1/marketplace/code-reviewer/install"
    assert (await client.post(url, headers=owner.headers)).status_code == 201

    again = await client.post(url, headers=owner.headers)
    assert again.status_code == 409
    error = again.json()["error"]
    assert error["field"] == "slug"
    assert "'code-reviewer-2'" in error["message"]  # it says which slug to pass instead

    custom = {"slug": "code-reviewer-2", "name": "Strict Reviewer", "model": "openai/gpt-4o-mini"}
    second = await client.post(url, json=custom, headers=owner.headers)
    assert second.status_code == 201, second.text
    assert {k: second.json()[k] for k in ("slug", "name", "model", "template_slug")} == custom | {
        "template_slug": "code-reviewer"
    }
    # With -2 taken as well, the suggestion moves on.
    third = await client.post(url, headers=owner.headers)
    assert "'code-reviewer-3'" in third.json()["error"]["message"]

    agents_now = (await client.get("/api/v1/agents", headers=owner.headers)).json()["items"]
    assert sorted(a["slug"] for a in agents_now) == ["code-reviewer", "code-reviewer-2"]
    browse = (await client.get("/api/v1/marketplace", params={"q": "code reviewer"}, headers=owner.headers)).json()
    assert {i["slug"]: i["installed_count"] for i in browse["items"]}["code-reviewer"] == 2


async def test_install_rejects_bad_options_without_writing(client: httpx.AsyncClient, make_account) -> None:
    owner = await make_account()
    url = "/api/v1/marketplace/sql-assistant/install"
    cases = [
        ({"slug": "Not A Slug"}, "slug"),
        ({"model": "no-provider"}, "model"),
        ({"name": "   "}, "name"),
        ({"temperature": 2}, "temperature"),  # not an install option: extra fields are refused
    ]
    for body, field in cases:
        response = await client.post(url, json=body, headers=owner.headers)
        assert response.status_code == 422, body
        assert response.json()["error"]["field"] == field
    assert (await client.get("/api/v1/agents", headers=owner.headers)).json()["items"] == []


async def test_a_viewer_can_browse_but_not_install(client: httpx.AsyncClient, make_account) -> None:
    owner = await make_account("Owner Co")
    viewer = await make_account("Viewer Home")
    added = await client.post("/api/v1/members", json={"email": viewer.email, "role": "viewer"}, headers=owner.headers)
    assert added.status_code == 201
    as_viewer = viewer.headers | {"X-Tenant-ID": owner.tenant_id}

    assert (await client.get("/api/v1/marketplace", headers=as_viewer)).status_code == 200
    refused = await client.post("/api/v1/marketplace/data-analyst/install", headers=as_viewer)
    assert refused.status_code == 403
    assert "viewer" in refused.json()["error"]["message"]
    assert (await client.get("/api/v1/agents", headers=owner.headers)).json()["items"] == []


async def test_installed_agents_stay_in_their_tenant(client: httpx.AsyncClient, make_account) -> None:
    a = await make_account("Tenant A")
    b = await make_account("Tenant B")
    installed = await client.post("/api/v1/marketplace/fpa-analyst/install", headers=a.headers)
    assert installed.status_code == 201

    assert (await client.get("/api/v1/agents", headers=b.headers)).json()["items"] == []
    assert (await client.get(f"/api/v1/agents/{installed.json()['id']}", headers=b.headers)).status_code == 404
    seen_by_b = (await client.get("/api/v1/marketplace/fpa-analyst", headers=b.headers)).json()
    assert seen_by_b["installed_count"] == 0
    # Slugs are unique per tenant: B installs the same template under the same slug.
    in_b = await client.post("/api/v1/marketplace/fpa-analyst/install", headers=b.headers)
    assert in_b.status_code == 201
    assert in_b.json()["id"] != installed.json()["id"]
    assert [x["id"] for x in (await client.get("/api/v1/agents", headers=a.headers)).json()["items"]] == [
        installed.json()["id"]
    ]


# ------------------------------------------------------------------ demo seed


async def test_demo_seed_installs_its_templates_once(backend: str) -> None:
    first = await seed_demo()
    second = await seed_demo()
    assert first.created and not second.created
    assert first.agents_installed == DEMO_TEMPLATES
    assert second.agents_installed == ()

    tenant = await tenancy.resolve_tenant(first.tenant_slug)
    ctx = tenancy.operator_ctx(tenant.id)
    page = await agents.list_agents(ctx)
    assert sorted(a.template_slug for a in page.items) == sorted(DEMO_TEMPLATES)
    assert sorted(a.slug for a in page.items) == sorted(DEMO_TEMPLATES)
    assert await marketplace.installed_templates(ctx) == dict.fromkeys(DEMO_TEMPLATES, 1)

    # A demo agent deleted by hand comes back on the next seed; the others are not duplicated.
    removed = next(a for a in page.items if a.slug == DEMO_TEMPLATES[0])
    await agents.delete_agent(ctx, removed.id)
    third = await seed_demo()
    assert third.agents_installed == (DEMO_TEMPLATES[0],)
    assert len((await agents.list_agents(ctx)).items) == len(DEMO_TEMPLATES)
