"""The Marketplace and Agents page states without a browser: their view-model helpers,
and their event handlers run against the real services on both backends."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from reflex_base.utils.form import FormData

from atom_core.agents import marketplace
from atom_core.agents import service as agents
from atom_core.agents.tools.builtins import TOOLS
from atom_core.context import Ctx
from atom_core.errors import Invalid
from atom_core.llm import OFFLINE_MODEL
from atom_core.tenancy import service as tenancy
from atom_ui.states import agents as agents_state
from atom_ui.states import marketplace as market_state
from atom_ui.states.agents import AgentsState, form_defaults, model_label, parse_agent_form
from atom_ui.states.marketplace import ALL, MarketplaceState

PAGE_STATE_LIMIT = 100_000  # bytes of serialized page state (issue 5)


# ------------------------------------------------------------------ pure helpers


def _form(**values: str) -> dict[str, str]:
    base = {
        "slug": "helper",
        "name": "Helper",
        "description": "",
        "model": OFFLINE_MODEL,
        "fallbacks": "",
        "system_prompt": "Be brief.",
        "temperature": "0.7",
        "max_tokens": "1024",
        "maturity": "student",
    }
    return base | values


def test_model_label_marks_the_offline_model() -> None:
    assert model_label(OFFLINE_MODEL) == "Offline model (no provider)"
    assert model_label("openai/gpt-4o-mini") == "openai/gpt-4o-mini"


def test_parse_agent_form_converts_text_to_service_fields() -> None:
    changes = parse_agent_form(
        _form(
            slug="  helper ",
            fallbacks="openai/gpt-4o-mini, anthropic/claude-3-haiku\nollama/llama3",
            temperature="0.25",
            max_tokens="256",
            memory_enabled="on",
        ),
        ["calculator", "calculator", "datetime_now"],
    )
    assert changes["slug"] == "helper"
    assert changes["fallbacks"] == ["openai/gpt-4o-mini", "anthropic/claude-3-haiku", "ollama/llama3"]
    assert changes["temperature"] == 0.25
    assert changes["max_tokens"] == 256
    assert changes["tools"] == ["calculator", "datetime_now"]
    assert changes["memory_enabled"] is True
    # Every key is one the service accepts, so the form cannot drift from the API.
    assert set(changes) <= agents.EDITABLE
    assert agents.validate(agents.AgentInput(**changes)).slug == "helper"
    assert parse_agent_form(_form(), [])["memory_enabled"] is False  # an unticked switch sends nothing


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [("temperature", "warm", "a number"), ("max_tokens", "1.5", "a whole number"), ("max_tokens", "", "whole")],
)
def test_parse_agent_form_names_the_field_of_a_bad_number(field: str, value: str, words: str) -> None:
    with pytest.raises(Invalid) as caught:
        parse_agent_form(_form(**{field: value}), [])
    assert caught.value.field == field
    assert words in caught.value.message


def test_form_defaults_round_trip_an_agent_unchanged() -> None:
    agent = agents.Agent(
        tenant_id=uuid.uuid4(),
        **dataclasses.asdict(
            agents.AgentInput(
                slug="round-trip",
                name="Round Trip",
                description="Checks the edit form.",
                model="openai/gpt-4o-mini",
                fallbacks=["anthropic/claude-3-haiku", OFFLINE_MODEL],
                system_prompt="Line one.\n  Line two keeps its indent.\n",
                temperature=0.3,
                max_tokens=2048,
                tools=["calculator"],
                memory_enabled=True,
                maturity="intern",
            )
        ),
    )
    values = form_defaults(agent) | {"memory_enabled": "on"}
    changes = parse_agent_form(values, agent.tools)
    for name, value in changes.items():
        assert getattr(agent, name) == value, name
    create = form_defaults()
    assert create["model"] == OFFLINE_MODEL
    assert parse_agent_form(create | {"slug": "x", "name": "X"}, [])["max_tokens"] == 1024


def test_cards_are_grouped_by_category_in_catalog_order() -> None:
    templates = marketplace.list_templates()
    installed = {templates[0].slug: 2}
    groups = market_state.group_cards(templates, installed)
    assert [g.category for g in groups] == [name for name, _ in marketplace.categories()]
    assert sum(len(g.cards) for g in groups) == len(templates)
    assert groups[0].label == marketplace.CATEGORIES[groups[0].category]
    first = groups[0].cards[0]
    assert first.slug == templates[0].slug and first.installed == 2
    assert first.offline and first.model_label == "Offline model (no provider)"
    assert all(card.installed == 0 for g in groups for card in g.cards if card.slug != first.slug)


def test_category_options_and_search_use_the_catalog() -> None:
    options = market_state.category_options()
    assert options[0].value == ALL and options[0].label == f"All categories ({len(marketplace.list_templates())})"
    assert {o.value for o in options[1:]} == {name for name, _ in marketplace.categories()}
    assert market_state.search(ALL, "") == marketplace.list_templates()
    found = market_state.search(ALL, "  invoice ")
    assert found and all("invoice" in marketplace.catalog().search_text[t.slug] for t in found)
    assert {t.category for t in market_state.search("support", "")} == {"support"}
    assert market_state.search(ALL, "zebra-quantum-nonsense") == []
    detail = market_state.template_detail(found[0])
    assert detail.system_prompt == found[0].system_prompt and detail.persona == found[0].persona


# ------------------------------------------------------------ handlers on services


async def _ctx(name: str) -> Ctx:
    email = f"ui-{uuid.uuid4().hex[:8]}@example.com"
    result = await tenancy.signup(email, "correct-horse-battery", name, client_ip="127.0.0.1")
    return await tenancy.authenticate(result.token, result.tenant_id)


@pytest.fixture
async def tenants(backend: str) -> AsyncIterator[tuple[Ctx, Ctx]]:
    yield await _ctx("Acme"), await _ctx("Globex")


class _Caller:
    """Stands in for the signed-in session: `current_ctx` returns whoever is set."""

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx

    async def __call__(self, state: Any) -> Ctx:
        return self.ctx


@pytest.fixture
def caller(tenants: tuple[Ctx, Ctx], monkeypatch: pytest.MonkeyPatch) -> _Caller:
    who = _Caller(tenants[0])
    monkeypatch.setattr(agents_state, "current_ctx", who)
    monkeypatch.setattr(market_state, "current_ctx", who)
    return who


async def run(handler_result: Any) -> list[Any]:
    """Drive an event handler to its end; returns what it yielded or returned."""
    if hasattr(handler_result, "__aiter__"):
        return [item async for item in handler_result]
    if hasattr(handler_result, "__await__"):
        return [await handler_result]
    return [handler_result]


def _size(state: Any) -> int:
    return len(json.dumps(state.dict(), default=str).encode())


def _agent_form(tools: tuple[str, ...] = (), **values: str) -> FormData:
    return FormData([*_form(**values).items(), *(("tools", t) for t in tools)])


async def test_agents_page_create_with_inline_error_edit_and_delete(caller: _Caller) -> None:
    state = AgentsState(_reflex_internal_init=True)
    await run(state.load())
    assert state.loaded and state.empty and state.rows == []
    assert state.tool_names == TOOLS.names()

    state.open_create()
    assert state.form_open and not state.editing and state.form_values["model"] == OFFLINE_MODEL
    await run(state.save(_agent_form(slug="Bad Slug!", name="Helper")))
    assert state.form_open, "the dialog stays open on an error"
    assert set(state.field_errors) == {"slug"} and state.field_errors["slug"].startswith("Slug must be")
    assert state.rows == []

    await run(state.save(_agent_form(("calculator",), slug="helper", name="Helper", temperature="3")))
    assert set(state.field_errors) == {"temperature"}

    await run(state.save(_agent_form(("calculator",), slug="helper", name="Helper", memory_enabled="on")))
    assert state.field_errors == {} and state.form_error == "" and not state.form_open
    [row] = state.rows
    assert (row.slug, row.tools, row.memory_enabled, row.offline) == ("helper", ["calculator"], True, True)
    assert row.model_label == "Offline model (no provider)" and state.highlight == "helper"

    await run(state.open_edit(row.id))
    assert state.form_open and state.editing and state.form_values["system_prompt"] == "Be brief."
    assert state.form_tools == ["calculator"] and state.form_memory is True
    await run(state.save(_agent_form(("datetime_now",), slug="helper", name="Helper Two", fallbacks="bad model")))
    assert set(state.field_errors) == {"fallbacks"}
    await run(state.save(_agent_form(("datetime_now",), slug="helper", name="Helper Two", maturity="intern")))
    assert not state.form_open
    [row] = state.rows
    assert (row.name, row.tools, row.maturity, row.memory_enabled) == ("Helper Two", ["datetime_now"], "intern", False)

    state.open_create()
    await run(state.save(_agent_form(slug="helper", name="Clash")))
    assert state.field_errors == {"slug": "An agent with slug 'helper' already exists"}

    state.ask_delete(row.id, row.name)
    assert state.delete_open and state.delete_name == "Helper Two"
    await run(state.confirm_delete())
    assert not state.delete_open and state.rows == []
    assert (await agents.list_agents(caller.ctx)).items == []


async def test_agents_page_pages_through_a_long_list_and_stays_small(caller: _Caller) -> None:
    prompt = "Answer carefully. " * 1000  # 18 KB each: the list must not carry prompts
    for number in range(agents_state.PAGE_SIZE + 5):
        await agents.create_agent(
            caller.ctx, agents.AgentInput(slug=f"agent-{number}", name=f"Agent {number}", system_prompt=prompt)
        )
    state = AgentsState(_reflex_internal_init=True)
    await run(state.load())
    assert len(state.rows) == agents_state.PAGE_SIZE and state.next_cursor
    assert _size(state) < PAGE_STATE_LIMIT
    await run(state.load_more())
    assert len(state.rows) == agents_state.PAGE_SIZE + 5 and state.next_cursor == ""
    assert len({r.slug for r in state.rows}) == len(state.rows)
    assert _size(state) < PAGE_STATE_LIMIT


async def test_a_list_reloaded_unchanged_is_not_sent_again(caller: _Caller) -> None:
    await agents.create_agent(caller.ctx, agents.AgentInput(slug="first", name="First"))
    state = AgentsState(_reflex_internal_init=True)
    await run(state.load())
    assert [r.slug for r in state.rows] == ["first"]
    state._clean()  # what a delta to the browser does
    await run(state.load())
    assert "rows" not in state.dirty_vars and [r.slug for r in state.rows] == ["first"]
    await agents.create_agent(caller.ctx, agents.AgentInput(slug="second", name="Second"))
    await run(state.load())
    assert "rows" in state.dirty_vars and {r.slug for r in state.rows} == {"first", "second"}


async def test_viewer_sees_the_service_refusal(caller: _Caller) -> None:
    caller.ctx = dataclasses.replace(caller.ctx, role="viewer")
    state = AgentsState(_reflex_internal_init=True)
    await run(state.load())
    assert state.empty
    state.open_create()
    await run(state.save(_agent_form(slug="nope", name="Nope")))
    assert state.form_error == "Your role 'viewer' cannot create, change or delete agents"


async def test_marketplace_page_search_detail_and_install(caller: _Caller) -> None:
    state = MarketplaceState(_reflex_internal_init=True)
    await run(state.load())
    total = len(marketplace.list_templates())
    assert state.loaded and state.error == "" and state.result_count == total
    assert len(state.groups) == len(marketplace.categories())
    assert state.categories[0].value == ALL
    assert _size(state) < PAGE_STATE_LIMIT

    state.set_query("zebra-quantum-nonsense")
    assert state.no_results and state.groups == []
    state.clear_search()
    assert state.result_count == total and state.query == ""

    state.set_category("support")
    assert [g.category for g in state.groups] == ["support"]
    state.set_query("tickets")
    assert 0 < state.result_count < total
    slug = state.groups[0].cards[0].slug

    state.open_detail(slug)
    template = marketplace.get_template(slug)
    assert state.detail_open and state.detail.system_prompt == template.system_prompt
    assert state.detail.model_label == "Offline model (no provider)" and state.detail_installed == 0

    state.ask_install()
    assert state.confirm_open and state.install_slug == slug
    results = await run(state.confirm_install())
    assert not state.confirm_open and state.install_error == ""
    assert state.installed_agent_slug == slug and state.detail_installed == 1
    assert state.groups[0].cards[0].installed == 1
    assert any(results), "a toast with a link to the agent"
    agent = await agents.get_agent_by_slug(caller.ctx, slug)
    assert agent.template_slug == slug

    # Installing again under the same slug: the conflict is shown next to the slug, with a free one to use.
    state.ask_install()
    await run(state.confirm_install())
    assert state.confirm_open and f"'{slug}-2'" in state.install_error
    state.set_install_slug(f"{slug}-2")
    await run(state.confirm_install())
    assert not state.confirm_open and state.detail_installed == 2


async def test_second_tenant_sees_none_of_the_first_tenants_agents(tenants: tuple[Ctx, Ctx], caller: _Caller) -> None:
    market = MarketplaceState(_reflex_internal_init=True)
    await run(market.load())
    market.open_detail(marketplace.list_templates()[0].slug)
    market.ask_install()
    await run(market.confirm_install())
    listing = AgentsState(_reflex_internal_init=True)
    await run(listing.load())
    assert len(listing.rows) == 1

    caller.ctx = tenants[1]
    other_market = MarketplaceState(_reflex_internal_init=True)
    await run(other_market.load())
    assert other_market.installed == {}
    assert all(card.installed == 0 for g in other_market.groups for card in g.cards)
    other = AgentsState(_reflex_internal_init=True)
    await run(other.load())
    assert other.empty and other.rows == []
    # Nor can it reach the first tenant's agent by id.
    await run(other.open_edit(listing.rows[0].id))
    assert not other.form_open
    other.ask_delete(listing.rows[0].id, "theirs")
    await run(other.confirm_delete())
    caller.ctx = tenants[0]
    assert len((await agents.list_agents(tenants[0])).items) == 1
