"""The Playground and Settings page states without a browser: view-model helpers, the
streaming loop, and the handlers run against the real services on both backends."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from atom_core.agents import runtime, sessions
from atom_core.agents import service as agents
from atom_core.agents.runs import AgentRun
from atom_core.context import Ctx
from atom_core.errors import Conflict, Forbidden, NotFound
from atom_core.llm import OFFLINE_MODEL, providers
from atom_core.tenancy import apikeys
from atom_core.tenancy import service as tenancy
from atom_ui.components.formatting import exact_usd
from atom_ui.states import playground as pg
from atom_ui.states import settings as st
from atom_ui.states.playground import PlaygroundState
from atom_ui.states.settings import SettingsState

PAGE_STATE_LIMIT = 100_000  # bytes of serialized page state (issue 5)
QUESTION = "What is 12 * (3 + 4)?"
PROVIDER_KEY = "sk-test-abcdefghijklmnop1234"


# ------------------------------------------------------------------ pure helpers


def test_format_cost_is_exact_with_six_decimals() -> None:
    assert exact_usd(0) == "$0.000000"
    assert exact_usd(12) == "$0.000012"
    assert exact_usd(1_234_567) == "$1.234567"
    assert exact_usd(-5) == "-$0.000005"


def test_meta_line_and_model_label() -> None:
    assert pg.meta_line(8, 4, 12, 340) == "12 tokens (8 prompt + 4 completion) · $0.000012 · 340 ms"
    assert pg.model_label(OFFLINE_MODEL) == "atom/offline (offline)"
    assert pg.model_label("openai/gpt-4o-mini") == "openai/gpt-4o-mini"
    assert pg.is_offline(OFFLINE_MODEL) and not pg.is_offline("openai/gpt-4o-mini")


def test_tool_cards_open_then_finish_in_place() -> None:
    started = {"id": "c1", "name": "calculator", "arguments": '{"expression": "1+1"}'}
    cards = pg.upsert_tool([], started)
    assert [(c.name, c.status) for c in cards] == [("calculator", "running")]
    assert cards[0].arguments == '{\n  "expression": "1+1"\n}'
    finished = started | {"ok": True, "output": '{"result": 2}', "error": None, "refused": False}
    cards = pg.upsert_tool(cards, finished)
    assert [(c.name, c.status) for c in cards] == [("calculator", "ok")]
    assert '"result": 2' in cards[0].output
    other = {"id": "c2", "name": "http_get", "arguments": "not json", "ok": False, "error": "boom", "refused": True}
    cards = pg.upsert_tool(cards, other)
    assert [c.status for c in cards] == ["ok", "refused"] and cards[1].arguments == "not json"
    long = pg.tool_card({"id": "c3", "name": "x", "arguments": "a" * 10_000, "ok": True, "output": "b" * 10_000})
    assert len(long.arguments) == pg.TOOL_TEXT_MAX and long.output.endswith("…")


def test_error_hints_point_to_what_helps() -> None:
    message = "No API key for provider 'openai' in this tenant: add one under Settings → Providers"
    assert pg.error_hint(message) == (pg.PROVIDER_HINT, pg.SETTINGS_PROVIDERS)
    assert pg.error_hint("whatever", "provider_not_configured")[1] == "/settings?tab=providers"
    assert pg.error_hint("Too many agent runs in progress (limit 4); retry shortly", "rate_limited")[0] == pg.RATE_HINT
    assert pg.error_hint("the provider is rate limiting this key (HTTP 429)")[0] == pg.RATE_HINT
    assert pg.error_hint("the run was cancelled") == ("", "")


def test_transcript_stays_under_the_page_budget() -> None:
    big_tool = {"id": "c", "name": "http_get", "arguments": "a" * 50_000, "ok": True, "output": "b" * 50_000}
    tools: list[pg.ToolCard] = []
    for number in range(20):
        tools = pg.upsert_tool(tools, big_tool | {"id": f"c{number}"})
    assert len(tools) == pg.TOOLS_SHOWN
    turns = [pg.failed_turn("q" * 40_000, "e", tools=tools, answer="x" * 100_000) for _ in range(pg.MAX_TURNS + 10)]
    kept, trimmed = pg.trim_turns(turns)
    assert trimmed and 1 <= len(kept) < len(turns) and kept[-1] is turns[-1]
    state = PlaygroundState(_reflex_internal_init=True)
    state.turns, state.live_text, state.live_tools = kept, "y" * pg.ANSWER_MAX, tools
    state.live_prompt = pg.clip("z" * 40_000, pg.PROMPT_MAX)
    assert _size(state) < PAGE_STATE_LIMIT
    small = [pg.failed_turn("hi", "e") for _ in range(5)]
    assert pg.trim_turns(small) == (small, False)


def test_fold_events_groups_a_batch() -> None:
    batch = pg.fold_events(
        [
            {"type": "run.started", "run_id": "r1"},
            {"type": "token", "text": "Hel"},
            {"type": "tool.started", "id": "c1", "name": "calculator", "arguments": "{}"},
            {"type": "token", "text": "lo"},
            {"type": "run.finished", "status": "succeeded"},
        ]
    )
    assert batch.run_id == "r1" and "".join(batch.text) == "Hello"
    assert [t["name"] for t in batch.tools] == ["calculator"] and batch.summary["status"] == "succeeded"


def test_pick_agent_prefers_the_url_then_the_open_one() -> None:
    options = [pg.AgentOption("1", "alpha", "Alpha", OFFLINE_MODEL), pg.AgentOption("2", "calc", "Calc", OFFLINE_MODEL)]
    assert pg.pick_agent(options, wanted_slug="calc", current_id="1") == "2"
    assert pg.pick_agent(options, wanted_slug="nope", current_id="2") == "2"
    assert pg.pick_agent(options, current_id="gone") == "1"
    assert pg.pick_agent([], wanted_slug="calc") == ""


def test_when_is_short_and_human() -> None:
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    assert pg.when(now - timedelta(seconds=5), now) == "just now"
    assert pg.when(now - timedelta(minutes=5), now) == "5 min ago"
    assert pg.when(now - timedelta(hours=3), now) == "3 h ago"
    assert pg.when(now - timedelta(days=3), now) == "2026-04-28 12:00 UTC"


def test_turn_from_a_failed_run_carries_the_error_and_hint() -> None:
    run = AgentRun(
        tenant_id=uuid.uuid4(),
        agent_slug="a",
        session_id="s",
        input="hi",
        status="failed",
        model="openai/gpt-4o-mini",
        error="no API key for provider 'openai' in this tenant: add one under Settings → Providers",
    )
    turn = pg.turn_from_run(run)
    assert turn.status == "failed" and turn.error.startswith("No API key for provider 'openai'")
    assert turn.hint_link == pg.SETTINGS_PROVIDERS and turn.meta.endswith("$0.000000 · 0 ms")
    assert turn.model == "openai/gpt-4o-mini" and not turn.offline


def test_grantable_roles_follow_the_matrix() -> None:
    assert st.grantable_roles("owner") == ["owner", "admin", "member", "viewer"]
    assert st.grantable_roles("admin") == ["admin", "member", "viewer"]
    assert st.grantable_roles("member") == ["member", "viewer"]
    assert st.grantable_roles("viewer") == ["viewer"]
    assert st.grantable_roles("") == []


def test_provider_row_shows_only_the_hint() -> None:
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    with_key = providers.ProviderInfo("openai", True, "…1234", None, now)
    assert dataclasses.astuple(st.provider_row(with_key)) == ("openai", "…1234", True, "", "2026-05-01 12:00 UTC")
    short = providers.ProviderInfo("groq", True, "…", "https://example.com/v1", now)
    assert st.provider_row(short).key == "set (short key, no hint)"
    assert st.provider_row(providers.ProviderInfo("ollama", False, None, None, now)).key == "no key"


def test_member_and_key_rows_follow_the_role_matrix() -> None:
    now = datetime(2026, 5, 1, tzinfo=UTC)
    me, other = uuid.uuid4(), uuid.uuid4()
    owner_row = tenancy.MemberInfo(other, "o@example.com", "owner", now)
    member_row = tenancy.MemberInfo(other, "m@example.com", "member", now)
    assert not st.member_row(owner_row, user_id=str(me), role="admin").can_edit
    assert st.member_row(owner_row, user_id=str(me), role="owner").can_edit
    assert st.member_row(member_row, user_id=str(me), role="admin").can_edit
    assert not st.member_row(member_row, user_id=str(me), role="member").can_edit
    mine = st.member_row(tenancy.MemberInfo(me, "me@example.com", "owner", now), user_id=str(me), role="owner")
    assert mine.is_me and not mine.can_edit

    key = apikeys.ApiKeyInfo(uuid.uuid4(), "ci", "atom_abc", "member", other, now, None, None)
    assert not st.key_row(key, user_id=str(me), role="member").can_revoke
    assert st.key_row(key, user_id=str(me), role="admin").can_revoke
    assert st.key_row(key, user_id=str(other), role="member").can_revoke
    revoked = dataclasses.replace(key, revoked_at=now)
    row = st.key_row(revoked, user_id=str(other), role="owner")
    assert row.revoked and not row.can_revoke and row.last_used == "never"


# ------------------------------------------------------------ the streaming loop


async def test_stream_turn_batches_tokens_and_keeps_tool_cards() -> None:
    published: list[pg.Progress] = []

    async def fake_run(sink) -> Any:
        await sink({"type": "run.started", "run_id": "r1"})
        await sink({"type": "tool.started", "id": "c1", "name": "calculator", "arguments": "{}"})
        await sink({"type": "tool.finished", "id": "c1", "name": "calculator", "arguments": "{}", "ok": True})
        for _ in range(200):
            await sink({"type": "token", "text": "x"})
        raise NotFound("agent not found")

    async def publish(progress: pg.Progress, batch: pg.LiveTurn) -> bool:
        published.append(dataclasses.replace(progress, tools=list(progress.tools)))
        return False

    turn = await pg.stream_turn("hi", fake_run, publish, flush_s=0.01)
    assert 1 <= len(published) < 20, "200 tokens must reach the page in a few batches"
    assert published[-1].text == "x" * 200 and published[-1].run_id == "r1"
    assert [(t.name, t.status) for t in turn.tools] == [("calculator", "ok")]
    assert turn.status == "failed" and turn.error == "Agent not found" and turn.answer == "x" * 200


async def test_stream_turn_stops_a_started_run() -> None:
    cancelled = asyncio.Event()

    async def slow_run(sink) -> Any:
        await sink({"type": "run.started", "run_id": "r1"})
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def publish(progress: pg.Progress, batch: pg.LiveTurn) -> bool:
        return True  # the user pressed Stop

    turn = await asyncio.wait_for(pg.stream_turn("hi", slow_run, publish, flush_s=0.01), timeout=5)
    assert cancelled.is_set() and turn.status == "cancelled"


# ------------------------------------------------------------ handlers on services


async def _ctx(name: str, email: str | None = None) -> Ctx:
    email = email or f"ui-{uuid.uuid4().hex[:8]}@example.com"
    result = await tenancy.signup(email, "correct-horse-battery", name, client_ip="127.0.0.1")
    return await tenancy.authenticate(result.token, result.tenant_id)


@pytest.fixture
async def owner(backend: str) -> AsyncIterator[Ctx]:
    yield await _ctx("Acme")


class _Caller:
    """Stands in for the signed-in session: `current_ctx` returns whoever is set."""

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx

    async def __call__(self, state: Any) -> Ctx:
        return self.ctx


@pytest.fixture
def caller(owner: Ctx, monkeypatch: pytest.MonkeyPatch) -> _Caller:
    who = _Caller(owner)
    monkeypatch.setattr(pg, "current_ctx", who)
    monkeypatch.setattr(st, "current_ctx", who)
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


async def _calculator_agent(ctx: Ctx, slug: str = "calc") -> agents.Agent:
    return await agents.create_agent(ctx, agents.AgentInput(slug=slug, name="Calculator", tools=["calculator"]))


async def test_offline_calculator_turn_streams_84_with_its_numbers(caller: _Caller) -> None:
    agent = await _calculator_agent(caller.ctx)
    shown: list[pg.Progress] = []

    async def publish(progress: pg.Progress, batch: pg.LiveTurn) -> bool:
        shown.append(dataclasses.replace(progress))
        return False

    def start(text: str):
        return lambda sink: runtime.run_agent(caller.ctx, agent.id, text, session_id="s-1", on_event=sink)

    turn = await pg.stream_turn(QUESTION, start(QUESTION), publish)
    assert turn.status == "succeeded" and "84" in turn.answer and turn.error == ""
    assert [(t.name, t.status) for t in turn.tools] == [("calculator", "ok")]
    assert "$0.000000" in turn.meta and " tokens (" in turn.meta and turn.offline
    assert turn.model == "atom/offline (offline)"
    assert shown and shown[0].run_id and "84" in shown[-1].text

    second = await pg.stream_turn("What did I ask before?", start("What did I ask before?"), publish)
    assert second.status == "succeeded" and "84" in second.answer, "the session carries the first turn"

    [summary] = await sessions.recent_sessions(caller.ctx, agent.id)
    assert (summary.session_id, summary.runs, summary.title) == ("s-1", 2, QUESTION)
    runs = await sessions.session_runs(caller.ctx, agent.id, "s-1")
    assert [r.input for r in runs] == [QUESTION, "What did I ask before?"]


async def test_stop_cancels_the_running_run(caller: _Caller, monkeypatch: pytest.MonkeyPatch) -> None:
    agent = await _calculator_agent(caller.ctx)

    async def thinking_forever(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(60)

    monkeypatch.setattr(runtime.gateway, "complete", thinking_forever)
    state = PlaygroundState(_reflex_internal_init=True)
    started = asyncio.Event()

    async def publish(progress: pg.Progress, batch: pg.LiveTurn) -> bool:
        if progress.run_id:
            state.running, state.run_id = True, progress.run_id
            started.set()
        return state.stop_requested

    streaming = asyncio.create_task(
        pg.stream_turn(
            QUESTION,
            lambda sink: runtime.run_agent(caller.ctx, agent.id, QUESTION, on_event=sink),
            publish,
            flush_s=0.01,
        )
    )
    await asyncio.wait_for(started.wait(), timeout=30)
    await run(state.stop())  # the Stop button: cancels the run through the runtime
    assert state.stop_requested
    turn = await asyncio.wait_for(streaming, timeout=10)
    assert turn.status == "cancelled" and turn.error == "The run was cancelled"
    assert (await runtime.get_run(caller.ctx, uuid.UUID(state.run_id))).status == "cancelled"


async def test_playground_state_loads_agents_and_reopens_a_session(
    caller: _Caller, monkeypatch: pytest.MonkeyPatch
) -> None:
    calc = await _calculator_agent(caller.ctx)
    await agents.create_agent(caller.ctx, agents.AgentInput(slug="other", name="Other"))
    await runtime.run_agent(caller.ctx, calc.id, QUESTION, session_id="earlier")

    state = PlaygroundState(_reflex_internal_init=True)
    await run(state.load())
    assert state.loaded and state.load_error == "" and len(state.agents) == 2
    other_id = next(a.id for a in state.agents if a.slug == "other")
    assert state.agent_id == other_id, "the newest agent is opened"
    assert state.session_id and state.turns == [] and state.can_run and state.recent == []
    await run(state.choose_agent(str(calc.id)))
    assert [s.session_id for s in state.recent] == ["earlier"] and state.recent[0].title == QUESTION

    await run(state.open_session("earlier"))
    [turn] = state.turns
    assert state.session_id == "earlier" and "84" in turn.answer and turn.tools[0].name == "calculator"
    assert "$0.000000" in turn.meta

    first_session = state.session_id
    state.new_chat()
    assert state.turns == [] and state.session_id != first_session

    await run(state.choose_agent(other_id))
    assert state.agent_id == other_id and state.recent == [] and state.turns == []
    assert _size(state) < PAGE_STATE_LIMIT


async def test_playground_state_handles_no_agents_and_viewers(caller: _Caller) -> None:
    state = PlaygroundState(_reflex_internal_init=True)
    await run(state.load())
    assert state.loaded and state.agents == [] and state.agent_id == ""
    caller.ctx = dataclasses.replace(caller.ctx, role="viewer")
    await run(state.load())
    assert not state.can_run


async def test_settings_providers_keep_the_key_out_of_the_page(caller: _Caller) -> None:
    state = SettingsState(_reflex_internal_init=True)
    await run(state.load())
    assert state.role == "owner" and state.can_manage_providers and state.providers == []

    state.open_provider_dialog("")
    assert state.provider_dialog_open and state.provider_edit == ""
    await run(state.save_provider({"provider": "not-a-provider", "api_key": PROVIDER_KEY, "api_base": ""}))
    assert set(state.provider_errors) == {"provider"} and state.provider_dialog_open
    await run(state.save_provider({"provider": "openai", "api_key": PROVIDER_KEY, "api_base": "ftp://x"}))
    assert set(state.provider_errors) == {"api_base"}
    await run(state.save_provider({"provider": "openai", "api_key": PROVIDER_KEY, "api_base": ""}))
    assert state.provider_errors == {} and not state.provider_dialog_open
    [row] = state.providers
    assert (row.provider, row.key, row.key_set, row.api_base) == ("openai", "…1234", True, "")
    assert PROVIDER_KEY not in json.dumps(state.dict(), default=str)

    # Editing with an empty key keeps the stored one.
    state.open_provider_dialog("openai")
    assert state.provider_edit == "openai"
    await run(state.save_provider({"api_key": "", "api_base": "https://api.openai.com/v1"}))
    [row] = state.providers
    assert row.key == "…1234" and row.api_base == "https://api.openai.com/v1"
    credentials = await providers.credentials_for(caller.ctx, "openai/gpt-4o-mini")
    assert credentials.api_key == PROVIDER_KEY

    state.ask("delete_provider", "openai", "openai")
    assert state.confirm_open and "openai" in state.confirm_body
    await run(state.confirm())
    assert not state.confirm_open and state.providers == []


async def test_settings_provider_test_reports_plainly(caller: _Caller) -> None:
    # Not configured: the service's NotFound, shown as a sentence.
    with pytest.raises(NotFound):
        await providers.test_provider(caller.ctx, "openai")
    # A member may list providers but not test them: the Forbidden message, plainly.
    member = dataclasses.replace(caller.ctx, role="member")
    with pytest.raises(Forbidden, match="cannot manage model providers"):
        await providers.test_provider(member, "openai")


async def test_settings_api_key_shown_once_then_revoked(caller: _Caller) -> None:
    state = SettingsState(_reflex_internal_init=True)
    await run(state.load())
    assert state.can_create_keys and state.keys == []
    await run(state.create_key({"name": "", "role": "member"}))
    assert set(state.key_errors) == {"name"} and state.new_key == ""
    await run(state.create_key({"name": "ci", "role": "owner"}))
    assert state.new_key_open and state.new_key.startswith("atom_")
    full_key = state.new_key
    [row] = state.keys
    assert row.name == "ci" and full_key.startswith(row.prefix) and row.can_revoke and not row.revoked
    assert full_key not in json.dumps([dataclasses.asdict(k) for k in state.keys])

    state.close_new_key(False)
    assert state.new_key == "" and not state.new_key_open

    state.ask("revoke_key", row.id, "The key ci")
    await run(state.confirm())
    [row] = state.keys
    assert row.revoked and not row.can_revoke
    with pytest.raises(Exception, match="revoked"):
        await apikeys.authenticate(full_key, None, request_id="t")


async def test_settings_members_add_change_role_remove(caller: _Caller) -> None:
    colleague = f"colleague-{uuid.uuid4().hex[:6]}@example.com"
    await _ctx("Elsewhere", email=colleague)
    state = SettingsState(_reflex_internal_init=True)
    await run(state.load())
    assert state.can_manage_members and [m.is_me for m in state.members] == [True]

    await run(state.add_member({"email": "nobody@example.com", "role": "member"}))
    assert set(state.member_errors) == {"email"} and "sign up first" in state.member_errors["email"]
    await run(state.add_member({"email": colleague, "role": "viewer"}))
    assert state.member_errors == {} and [m.role for m in state.members] == ["owner", "viewer"]
    other = state.members[1]
    assert other.can_edit

    await run(state.change_role(other.user_id, "admin"))
    assert state.members_error == "" and state.members[1].role == "admin"

    # An admin cannot make an owner: the service refuses, and the page says so.
    caller.ctx = dataclasses.replace(caller.ctx, role="admin")
    await run(state.change_role(other.user_id, "owner"))
    assert state.members_error == "Your role 'admin' cannot grant the role 'owner'"
    assert state.members[1].role == "admin"
    caller.ctx = dataclasses.replace(caller.ctx, role="owner")

    state.ask("remove_member", other.user_id, other.email)
    await run(state.confirm())
    assert [m.email for m in state.members] == [state.members[0].email] and len(state.members) == 1
    assert _size(state) < PAGE_STATE_LIMIT


async def test_settings_viewer_sees_what_it_may_not_do(caller: _Caller) -> None:
    caller.ctx = dataclasses.replace(caller.ctx, role="viewer")
    state = SettingsState(_reflex_internal_init=True)
    await run(state.load())
    assert not (state.can_manage_providers or state.can_create_keys or state.can_manage_members)
    assert state.providers_error == "Your role 'viewer' cannot see model providers"
    assert state.keys_error == "Your role 'viewer' cannot list API keys"
    assert state.members_error == "" and len(state.members) == 1


async def test_change_member_role_keeps_an_owner(owner: Ctx) -> None:
    me = await tenancy.me(owner)
    with pytest.raises(Conflict, match="at least one owner"):
        await tenancy.change_member_role(owner, owner.user_id, "admin")
    colleague = f"c-{uuid.uuid4().hex[:6]}@example.com"
    await _ctx("Elsewhere", email=colleague)
    added = await tenancy.add_member(owner, colleague, "member")
    with pytest.raises(Forbidden):
        await tenancy.change_member_role(dataclasses.replace(owner, role="member"), added.user_id, "viewer")
    promoted = await tenancy.change_member_role(owner, added.user_id, "owner")
    assert promoted.role == "owner"
    admin = dataclasses.replace(owner, role="admin", user_id=uuid.uuid4())
    with pytest.raises(Forbidden, match="only an owner"):
        await tenancy.change_member_role(admin, added.user_id, "member")
    demoted = await tenancy.change_member_role(owner, me.user_id, "admin")  # another owner remains
    assert demoted.role == "admin"
    with pytest.raises(NotFound):
        await tenancy.change_member_role(owner, uuid.uuid4(), "viewer")
