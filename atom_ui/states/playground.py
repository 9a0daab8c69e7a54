"""State of /playground: chat with one agent in a session, answers streamed as they come.

Sending starts a background event that runs the agent in a task of its own and
feeds the page from a queue, at most once per FLUSH_S: tokens arrive one by one,
but the websocket gets one update per batch. The answer being written lives in
`live_*` vars, apart from the finished turns, so each update carries only the
growing text and not the whole transcript. Stop cancels the run through the
runtime (on whichever node runs it).

The page keeps the newest turns that fit in TRANSCRIPT_BUDGET characters (at most
MAX_TURNS) and cuts long texts (messages, answers, tool outputs), so its state
stays well under 100 KB however long the conversation; the session itself goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import reflex as rx

from atom_core.agents import runtime, sessions
from atom_core.agents import service as agents
from atom_core.agents.run_events import EventSink
from atom_core.agents.runs import AgentRun
from atom_core.errors import AtomError
from atom_core.llm import OFFLINE_MODEL, OFFLINE_PROVIDER
from atom_ui.components.formatting import exact_usd
from atom_ui.session import current_ctx, user_message
from atom_ui.state import GENERIC_ERROR, AuthState

log = logging.getLogger(__name__)

FLUSH_S = 0.05
MAX_TURNS = 30
MAX_AGENTS = 200
RECENT_SESSIONS = 8
ANSWER_MAX = 16_000
PROMPT_MAX = 4_000
TOOL_TEXT_MAX = 1_000
TOOLS_SHOWN = 8
TRANSCRIPT_BUDGET = 48_000
TITLE_MAX = 60
SETTINGS_PROVIDERS = "/settings?tab=providers"
PROVIDER_HINT = "Add a provider key in Settings → Providers, or switch the agent to the offline model."
RATE_HINT = "Wait a few seconds and send again."
MAX_INPUT_HINT = "Shorten the message and send again."


@dataclass
class ToolCard:
    id: str = ""
    name: str = ""
    arguments: str = ""
    output: str = ""
    error: str = ""
    status: str = "running"  # running | ok | error | refused


@dataclass
class Turn:
    """One exchange: the user's message and the agent's answer with its numbers."""

    id: str = ""
    prompt: str = ""
    answer: str = ""
    tools: list[ToolCard] = field(default_factory=list)
    status: str = "succeeded"  # succeeded | failed | cancelled
    error: str = ""
    hint: str = ""
    hint_link: str = ""  # a page that helps (Settings → Providers), or ""
    meta: str = ""  # "12 tokens (8 prompt + 4 completion) · $0.000012 · 340 ms"
    model: str = ""
    offline: bool = False


@dataclass
class AgentOption:
    id: str = ""
    slug: str = ""
    name: str = ""
    model: str = ""


@dataclass
class SessionOption:
    session_id: str = ""
    title: str = ""
    detail: str = ""  # "3 messages · 2026-05-01 14:03"


# --- view-model helpers (pure) ---------------------------------------------------------------


def clip(text: str | None, limit: int) -> str:
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_offline(model: str) -> bool:
    return model == OFFLINE_MODEL or model.startswith(f"{OFFLINE_PROVIDER}/")


def model_label(model: str) -> str:
    return f"{model} (offline)" if is_offline(model) else model


def meta_line(prompt_tokens: int, completion_tokens: int, cost_micros: int, latency_ms: int) -> str:
    total = prompt_tokens + completion_tokens
    return (
        f"{total} tokens ({prompt_tokens} prompt + {completion_tokens} completion)"
        f" · {exact_usd(cost_micros)} · {latency_ms} ms"
    )


def pretty_json(text: str | None) -> str:
    """Tool arguments and outputs are JSON text: indent them when they parse."""
    text = text or ""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def tool_card(call: Mapping[str, Any]) -> ToolCard:
    """A card from a `tool.started`/`tool.finished` event or a run's recorded tool call."""
    if "ok" not in call:
        status = "running"
    elif call.get("refused"):
        status = "refused"
    else:
        status = "ok" if call.get("ok") else "error"
    return ToolCard(
        id=str(call.get("id") or ""),
        name=str(call.get("name") or ""),
        arguments=clip(pretty_json(call.get("arguments")), TOOL_TEXT_MAX),
        output=clip(pretty_json(call.get("output")), TOOL_TEXT_MAX),
        error=clip(call.get("error"), TOOL_TEXT_MAX),
        status=status,
    )


def upsert_tool(cards: list[ToolCard], call: Mapping[str, Any]) -> list[ToolCard]:
    """`tool.finished` replaces the card its `tool.started` opened (same id); the newest TOOLS_SHOWN stay."""
    card = tool_card(call)
    for index, existing in enumerate(cards):
        if existing.id == card.id:
            return [*cards[:index], card, *cards[index + 1 :]]
    return [*cards, card][-TOOLS_SHOWN:]


def turn_size(turn: Turn) -> int:
    tools = sum(len(t.arguments) + len(t.output) + len(t.error) + 64 for t in turn.tools)
    return len(turn.prompt) + len(turn.answer) + len(turn.error) + tools + 256


def trim_turns(turns: list[Turn]) -> tuple[list[Turn], bool]:
    """The newest turns that fit the page's budget (always the last one); True if some were left out."""
    kept: list[Turn] = []
    used = 0
    for turn in reversed(turns[-MAX_TURNS:]):
        used += turn_size(turn)
        if kept and used > TRANSCRIPT_BUDGET:
            break
        kept.append(turn)
    kept.reverse()
    return kept, len(kept) < len(turns)


def error_hint(message: str, code: str = "") -> tuple[str, str]:
    """What the user can do about a failed run: (hint, link)."""
    text = message.lower()
    if code == "provider_not_configured" or "no api key for provider" in text or "rejected the api key" in text:
        return PROVIDER_HINT, SETTINGS_PROVIDERS
    if code == "rate_limited" or "429" in text or "rate limit" in text or "too many" in text:
        return RATE_HINT, ""
    if code == "invalid" and "characters" in text:
        return MAX_INPUT_HINT, ""
    return "", ""


def turn_from_run(run: AgentRun, tools: list[ToolCard] | None = None) -> Turn:
    """A finished (or failed, or cancelled) run as a transcript turn."""
    error = "" if run.status == "succeeded" else (run.error or f"the run {run.status}")
    hint, link = error_hint(error) if error else ("", "")
    return Turn(
        id=str(run.id),
        prompt=clip(run.input, PROMPT_MAX),
        answer=clip(run.output, ANSWER_MAX),
        tools=(tools if tools is not None else [tool_card(call) for call in run.tool_calls or []])[-TOOLS_SHOWN:],
        status=run.status,
        error=error[:1].upper() + error[1:],
        hint=hint,
        hint_link=link,
        meta=meta_line(run.prompt_tokens, run.completion_tokens, run.cost_micros, run.latency_ms),
        model=model_label(run.model),
        offline=is_offline(run.model),
    )


def failed_turn(
    prompt: str, message: str, code: str = "", tools: list[ToolCard] | None = None, answer: str = ""
) -> Turn:
    """A turn whose run did not start or did not finish (no numbers to show)."""
    hint, link = error_hint(message, code)
    return Turn(
        id=uuid.uuid4().hex,
        prompt=clip(prompt, PROMPT_MAX),
        answer=clip(answer, ANSWER_MAX),
        tools=(tools or [])[-TOOLS_SHOWN:],
        status="cancelled" if code == "cancelled" else "failed",
        error=message,
        hint=hint,
        hint_link=link,
    )


def session_option(summary: sessions.SessionSummary, now: datetime | None = None) -> SessionOption:
    runs = f"{summary.runs} message{'s' if summary.runs != 1 else ''}"
    return SessionOption(
        session_id=summary.session_id,
        title=clip(" ".join(summary.title.split()), TITLE_MAX) or "(empty)",
        detail=f"{runs} · {when(summary.last_at, now)}",
    )


def when(at: datetime, now: datetime | None = None) -> str:
    """A short, human time: "just now", "5 min ago", "3 h ago", else the date (UTC)."""
    now = now or datetime.now(UTC)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    seconds = (now - at).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86_400:
        return f"{int(seconds // 3600)} h ago"
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def pick_agent(options: Iterable[AgentOption], *, wanted_slug: str = "", current_id: str = "") -> str:
    """The agent to show: the one the URL names, else the one already open, else the first."""
    options = list(options)
    for option in options:
        if wanted_slug and option.slug == wanted_slug:
            return option.id
    if any(option.id == current_id for option in options):
        return current_id
    return options[0].id if options else ""


def new_session_id() -> str:
    return uuid.uuid4().hex


@dataclass
class LiveTurn:
    """What the background task has gathered of the running answer since its last flush."""

    text: list[str] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)
    run_id: str = ""
    summary: dict[str, Any] | None = None


def fold_events(events: Iterable[Mapping[str, Any]]) -> LiveTurn:
    """Reduce a batch of run events to what the page must change."""
    batch = LiveTurn()
    for event in events:
        kind = event.get("type")
        if kind == "run.started":
            batch.run_id = str(event.get("run_id") or "")
        elif kind == "token":
            batch.text.append(str(event.get("text") or ""))
        elif kind in ("tool.started", "tool.finished"):
            batch.tools.append(dict(event))
        elif kind in ("run.finished", "run.failed"):
            batch.summary = dict(event)
    return batch


def _drain(queue: asyncio.Queue) -> list[dict[str, Any]]:
    events = []
    while not queue.empty():
        events.append(queue.get_nowait())
    return events


@dataclass
class Progress:
    """What the page shows of the answer being written."""

    run_id: str = ""
    text: str = ""
    tools: list[ToolCard] = field(default_factory=list)


# Shows a batch on the page; True when the user asked to stop.
Publish = Callable[[Progress, LiveTurn], Awaitable[bool]]
StartRun = Callable[[EventSink], Awaitable[runtime.RunOutcome]]


async def stream_turn(prompt: str, start: StartRun, publish: Publish, *, flush_s: float = FLUSH_S) -> Turn:
    """Run an agent in a task of its own and publish its events at most once per `flush_s`.

    A stop request cancels the task once the run has started (it then records
    itself as cancelled); the caller's cancellation cancels the run too.
    """
    queue: asyncio.Queue = asyncio.Queue()
    task = asyncio.create_task(start(queue.put))
    progress, answer = Progress(), ""
    try:
        while True:
            finished = task.done()
            batch = fold_events(_drain(queue))
            if batch.text or batch.tools or batch.run_id:
                progress.run_id = batch.run_id or progress.run_id
                for call in batch.tools:
                    progress.tools = upsert_tool(progress.tools, call)
                answer += "".join(batch.text)
                progress.text = clip(answer, ANSWER_MAX)
                stop = await publish(progress, batch)
                if stop and progress.run_id and not finished:
                    task.cancel()
            if finished:
                break
            await asyncio.wait({task}, timeout=flush_s)
    except asyncio.CancelledError:
        task.cancel()
        raise
    return _outcome_turn(task, prompt, progress.tools, answer)


# --- the state ------------------------------------------------------------------------------


class PlaygroundState(rx.State):
    """The agent picked, its session, the finished turns and the answer being written."""

    tenant_id: str = ""
    agents: list[AgentOption] = []
    agent_id: str = ""
    session_id: str = ""
    turns: list[Turn] = []
    trimmed: bool = False  # older turns of the session are not shown
    recent: list[SessionOption] = []
    loaded: bool = False
    load_error: str = ""
    input_error: str = ""
    can_run: bool = True

    running: bool = False
    stop_requested: bool = False
    run_id: str = ""
    live_prompt: str = ""
    live_text: str = ""
    live_tools: list[ToolCard] = []

    @rx.var
    def agent(self) -> AgentOption:
        return next((a for a in self.agents if a.id == self.agent_id), AgentOption())

    @rx.var
    def agent_offline(self) -> bool:
        return is_offline(self.agent.model) if self.agent_id else False

    @rx.event
    async def load(self):
        """on_load: the tenant's agents, the agent the URL names (?agent=slug), its sessions."""
        await self._load()

    async def _load(self) -> None:
        self.load_error = ""
        try:
            ctx = await current_ctx(self)
            page = await agents.list_agents(ctx, limit=MAX_AGENTS)
        except Exception as err:
            self.load_error = user_message(err)
            return
        if self.tenant_id != str(ctx.tenant_id):  # another workspace: nothing carries over
            self.tenant_id, self.agent_id, self.turns, self.recent = str(ctx.tenant_id), "", [], []
            self.trimmed = False
        self.can_run = ctx.role != "viewer"
        self.agents = [AgentOption(str(a.id), a.slug, a.name, a.model) for a in page.items]
        wanted = self.router.url.query_parameters.get("agent", "")
        chosen = pick_agent(self.agents, wanted_slug=wanted, current_id=self.agent_id)
        if chosen != self.agent_id:
            self._open(chosen)
        if not self.session_id:
            self.session_id = new_session_id()
        self.loaded = True
        await self._load_recent()

    @rx.event
    async def reload_if_tenant_changed(self):
        """on_mount of a marker keyed on the tenant: agents and sessions belong to a workspace."""
        auth = await self.get_state(AuthState)
        if self.loaded and auth.tenant_id and auth.tenant_id != self.tenant_id and not self.running:
            await self._load()

    @rx.event
    async def choose_agent(self, agent_id: str):
        if self.running or agent_id == self.agent_id:
            return
        self._open(agent_id)
        await self._load_recent()

    @rx.event
    def new_chat(self):
        if self.running:
            return
        self.session_id, self.turns, self.trimmed, self.input_error = new_session_id(), [], False, ""

    @rx.event
    async def open_session(self, session_id: str):
        """Show a recent session and continue it."""
        if self.running:
            return
        try:
            ctx = await current_ctx(self)
            runs = await sessions.session_runs(ctx, uuid.UUID(self.agent_id), session_id, limit=MAX_TURNS + 1)
        except Exception as err:
            return rx.toast.error(user_message(err))
        self.session_id, self.input_error = session_id, ""
        self.turns, self.trimmed = trim_turns([turn_from_run(run) for run in runs])
        return None

    def _open(self, agent_id: str) -> None:
        self.agent_id, self.session_id, self.turns, self.recent = agent_id, new_session_id(), [], []
        self.trimmed = False
        self.input_error = ""

    async def _load_recent(self) -> None:
        """The agent's recent sessions: a nicety, so a failure only empties the list."""
        if not self.agent_id:
            self.recent = []
            return
        try:
            ctx = await current_ctx(self)
            found = await sessions.recent_sessions(ctx, uuid.UUID(self.agent_id), limit=RECENT_SESSIONS)
        except Exception:
            log.exception("could not list recent sessions")
            self.recent = []
            return
        self.recent = [session_option(s) for s in found]

    @rx.event
    async def stop(self):
        """Cancel the running answer; before its run exists, the sending task cancels it."""
        if not self.running:
            return
        if self.stop_requested:  # pressed again: the run is gone (a restarted server); free the page
            self.running, self.stop_requested, self.run_id = False, False, ""
            self.live_prompt, self.live_text, self.live_tools = "", "", []
            return
        self.stop_requested = True
        if not self.run_id:
            return
        try:
            ctx = await current_ctx(self)
            await runtime.cancel_run(ctx, uuid.UUID(self.run_id))
        except Exception as err:
            yield rx.toast.error(user_message(err))

    @rx.event(background=True)
    async def send(self, form: dict[str, Any]):
        text = str(form.get("message") or "")
        async with self:
            if self.running:
                return
            if not text.strip():
                self.input_error = "Type a message first."
                return
            if not self.agent_id:
                self.input_error = "Pick an agent first."
                return
            self.input_error = ""
            try:
                ctx = await current_ctx(self)
            except Exception as err:
                self.input_error = user_message(err)
                return
            agent_id, session_id = uuid.UUID(self.agent_id), self.session_id
            self.running, self.stop_requested, self.run_id = True, False, ""
            self.live_prompt, self.live_text, self.live_tools = clip(text, PROMPT_MAX), "", []
        turn = await stream_turn(
            text,
            lambda sink: runtime.run_agent(ctx, agent_id, text, session_id=session_id, on_event=sink),
            self._publish,
        )
        async with self:
            self.turns, trimmed = trim_turns([*self.turns, turn])
            self.trimmed = self.trimmed or trimmed
            self.running, self.stop_requested, self.run_id = False, False, ""
            self.live_prompt, self.live_text, self.live_tools = "", "", []
        try:
            recent = await sessions.recent_sessions(ctx, agent_id, limit=RECENT_SESSIONS)
        except Exception:
            log.exception("could not list recent sessions")
            return
        async with self:
            if self.agent_id == str(agent_id):
                self.recent = [session_option(s) for s in recent]

    async def _publish(self, progress: Progress, batch: LiveTurn) -> bool:
        async with self:
            if batch.run_id:
                self.run_id = progress.run_id
            if batch.text:
                self.live_text = progress.text
            if batch.tools:
                self.live_tools = progress.tools
            return self.stop_requested


def _outcome_turn(task: asyncio.Task, prompt: str, tools: list[ToolCard], answer: str) -> Turn:
    if task.cancelled():
        return failed_turn(prompt, "Stopped before the agent started.", "cancelled", tools, answer)
    error = task.exception()
    if error is None:
        turn = turn_from_run(task.result().run, tools or None)
        turn.answer = turn.answer or clip(answer, ANSWER_MAX)  # a stopped run keeps what it wrote
        return turn
    if isinstance(error, AtomError):
        return failed_turn(prompt, user_message(error), error.code, tools, answer)
    log.error("agent run failed in the playground", exc_info=error)
    return failed_turn(prompt, GENERIC_ERROR, "", tools, answer)
