"""State of /agents: the tenant's agents, one page at a time, and the create/edit/delete dialogs.

The form is uncontrolled (the browser keeps what is typed; the state only gets
it on submit), so typing costs no round trip. A service error that names a
field is shown next to that field; anything else above the form.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import reflex as rx
from reflex_base.utils.form import FormData

from atom_core.agents import service as agents
from atom_core.agents.models import Agent
from atom_core.agents.tools.builtins import TOOLS
from atom_core.errors import AtomError, Invalid
from atom_core.governance.maturity import DEFAULT_LEVEL
from atom_core.llm import OFFLINE_MODEL
from atom_ui.components.formatting import preview
from atom_ui.session import current_ctx, user_message
from atom_ui.state import AuthState

PAGE_SIZE = 50
DESCRIPTION_PREVIEW = 140
OFFLINE_LABEL = "Offline model (no provider)"

# The inputs of the form, in the order they appear; an error naming one of them is shown next to it.
FORM_FIELDS = (
    "slug",
    "name",
    "description",
    "model",
    "fallbacks",
    "system_prompt",
    "temperature",
    "max_tokens",
    "tools",
    "memory_enabled",
    "maturity",
)
_LIST_SEPARATORS = re.compile(r"[\s,]+")
_FALSE_WORDS = frozenset({"", "0", "false", "no", "off"})


def model_label(model: str) -> str:
    """How a model is shown: the offline model is always called out as such."""
    return OFFLINE_LABEL if model == OFFLINE_MODEL else model


@dataclass
class AgentRow:
    """One line of the agents list (no prompt: the list stays small)."""

    id: str = ""
    slug: str = ""
    name: str = ""
    description: str = ""
    model: str = ""
    model_label: str = ""
    offline: bool = False
    tools: list[str] = field(default_factory=list)
    maturity: str = ""
    memory_enabled: bool = False
    template_slug: str = ""


def agent_row(agent: Agent) -> AgentRow:
    return AgentRow(
        id=str(agent.id),
        slug=agent.slug,
        name=agent.name,
        description=preview(agent.description, DESCRIPTION_PREVIEW),
        model=agent.model,
        model_label=model_label(agent.model),
        offline=agent.model == OFFLINE_MODEL,
        tools=list(agent.tools),
        maturity=agent.maturity,
        memory_enabled=agent.memory_enabled,
        template_slug=agent.template_slug or "",
    )


def form_defaults(agent: Agent | None = None) -> dict[str, str]:
    """The text inputs of the form, filled from an agent (edit) or with the service's defaults (create)."""
    if agent is None:
        return {
            "slug": "",
            "name": "",
            "description": "",
            "model": OFFLINE_MODEL,
            "fallbacks": "",
            "system_prompt": "",
            "temperature": "0.7",
            "max_tokens": "1024",
            "maturity": DEFAULT_LEVEL,
        }
    return {
        "slug": agent.slug,
        "name": agent.name,
        "description": agent.description,
        "model": agent.model,
        "fallbacks": ", ".join(agent.fallbacks),
        "system_prompt": agent.system_prompt,
        "temperature": f"{agent.temperature:g}",
        "max_tokens": str(agent.max_tokens),
        "maturity": agent.maturity,
    }


def parse_agent_form(values: Mapping[str, Any], tools: Sequence[str]) -> dict[str, Any]:
    """Turn what the form submitted into the service's fields.

    Only the conversion from text happens here (numbers, lists, the flag); the
    rules themselves are the service's `validate`, so the UI cannot drift from
    the API. A value that is not a number raises Invalid naming its field.
    """

    def text(name: str) -> str:
        value = values.get(name, "")
        return value.strip() if isinstance(value, str) else ""

    return {
        "slug": text("slug"),
        "name": text("name"),
        "description": text("description"),
        "model": text("model"),
        "fallbacks": [item for item in _LIST_SEPARATORS.split(text("fallbacks")) if item],
        "system_prompt": values.get("system_prompt", "") if isinstance(values.get("system_prompt"), str) else "",
        "temperature": _number(text("temperature"), "temperature", float),
        "max_tokens": _number(text("max_tokens"), "max_tokens", int),
        "tools": list(dict.fromkeys(str(name) for name in tools)),
        "memory_enabled": text("memory_enabled").lower() not in _FALSE_WORDS,
        "maturity": text("maturity") or DEFAULT_LEVEL,
    }


def reveal_field(name: str) -> rx.event.EventSpec:
    """Scroll the dialog to a field's error and focus its input (the submit button had the focus)."""
    if name not in FORM_FIELDS and name != "form":
        name = "form"
    # `name` is one of ours (never user text), so it is safe to put in a script.
    return rx.call_script(
        "setTimeout(() => {"
        f"document.getElementById('agent-{name}-message')?.scrollIntoView({{block: 'center'}});"
        f"document.getElementById('agent-{name}')?.focus({{preventScroll: true}});"
        "}, 50)"
    )


def _number(raw: str, name: str, kind: type[int] | type[float]) -> int | float:
    words = "a whole number" if kind is int else "a number"
    try:
        return kind(raw)
    except ValueError:
        raise Invalid(f"{name.replace('_', ' ')} must be {words}", field=name) from None


class AgentsState(rx.State):
    """The agents list and its dialogs."""

    rows: list[AgentRow] = []
    next_cursor: str = ""
    loading: bool = False
    loaded: bool = False
    error: str = ""
    highlight: str = ""  # slug from ?agent=…, e.g. after an install
    loaded_tenant: str = ""

    tool_names: list[str] = []

    # Create / edit dialog.
    form_open: bool = False
    form_key: int = 0
    editing_id: str = ""
    form_values: dict[str, str] = {}
    form_tools: list[str] = []
    form_memory: bool = False
    field_errors: dict[str, str] = {}
    form_error: str = ""
    saving: bool = False

    # Delete confirmation.
    delete_open: bool = False
    delete_id: str = ""
    delete_name: str = ""
    deleting: bool = False

    @rx.var
    def empty(self) -> bool:
        return self.loaded and not self.rows and not self.error

    @rx.var
    def editing(self) -> bool:
        return self.editing_id != ""

    # ---------------------------------------------------------------- loading

    @rx.event
    async def load(self):
        """on_load: the first page of agents; `?agent=<slug>` highlights one."""
        self.highlight = self.router.url.query_parameters.get("agent", "")[:63]
        self.tool_names = TOOLS.names()
        self.loading = True
        self.error = ""
        yield
        await self._fetch(cursor=None)

    @rx.event
    async def load_more(self):
        if not self.next_cursor or self.loading:
            return
        self.loading = True
        yield
        await self._fetch(cursor=self.next_cursor)

    @rx.event
    async def reload_if_tenant_changed(self):
        """on_mount of a marker keyed on the tenant: switching workspace reloads the list."""
        auth = await self.get_state(AuthState)
        if auth.tenant_id and auth.tenant_id != self.loaded_tenant and not self.loading:
            self.rows = []
            self.loaded = False
            self.loading = True
            yield
            await self._fetch(cursor=None)

    async def _fetch(self, cursor: str | None) -> None:
        try:
            ctx = await current_ctx(self)
            page = await agents.list_agents(ctx, limit=PAGE_SIZE, cursor=cursor)
        except Exception as err:
            self.error = user_message(err)
        else:
            fetched = [agent_row(a) for a in page.items]
            if cursor:
                self.rows = [*self.rows, *fetched]
            elif fetched != self.rows:  # unchanged on a revisit: not sent to the browser again
                self.rows = fetched
            self.next_cursor = page.next_cursor or ""
            self.loaded_tenant = str(ctx.tenant_id)
            self.error = ""
        self.loading = False
        self.loaded = True

    # ------------------------------------------------------------ create / edit

    @rx.event
    def open_create(self):
        self._open_form(form_defaults(), tools=[], memory=False, editing_id="")

    @rx.event
    async def open_edit(self, agent_id: str):
        try:
            ctx = await current_ctx(self)
            agent = await agents.get_agent(ctx, uuid.UUID(agent_id))
        except Exception as err:
            return rx.toast.error(user_message(err))
        self._open_form(form_defaults(agent), tools=list(agent.tools), memory=agent.memory_enabled, editing_id=agent_id)
        return None

    def _open_form(self, values: dict[str, str], *, tools: list[str], memory: bool, editing_id: str) -> None:
        self.form_values = values
        self.form_tools = tools
        self.form_memory = memory
        self.editing_id = editing_id
        self.field_errors = {}
        self.form_error = ""
        self.saving = False
        self.form_key += 1  # remount the inputs so they take the new defaults
        self.form_open = True

    @rx.event
    def set_form_open(self, open: bool):
        if not open and self.saving:
            return
        self.form_open = open

    @rx.event
    async def save(self, form: FormData):
        self.field_errors = {}
        self.form_error = ""
        self.saving = True
        yield
        try:
            ctx = await current_ctx(self)
            changes = parse_agent_form(form, form.getlist("tools"))
            if self.editing_id:
                agent = await agents.update_agent(ctx, uuid.UUID(self.editing_id), changes)
            else:
                agent = await agents.create_agent(ctx, agents.AgentInput(**changes))
        except AtomError as err:
            self.saving = False
            if err.field in FORM_FIELDS:
                self.field_errors = {err.field: user_message(err)}
                yield reveal_field(err.field)
            else:
                self.form_error = user_message(err)
                yield reveal_field("form")
            return
        except Exception as err:
            self.saving = False
            self.form_error = user_message(err)
            return
        row = agent_row(agent)
        created = not self.editing_id
        if created:
            self.rows = [row, *self.rows]
        else:
            self.rows = [row if r.id == row.id else r for r in self.rows]
        self.highlight = row.slug
        self.saving = False
        self.form_open = False
        self.loaded = True
        verb = "created" if created else "saved"
        yield rx.toast.success(f"Agent '{row.name}' {verb}.")

    # ------------------------------------------------------------------ delete

    @rx.event
    def ask_delete(self, agent_id: str, name: str):
        self.delete_id = agent_id
        self.delete_name = name
        self.deleting = False
        self.delete_open = True

    @rx.event
    def set_delete_open(self, open: bool):
        if not open and self.deleting:
            return
        self.delete_open = open

    @rx.event
    async def confirm_delete(self):
        self.deleting = True
        yield
        try:
            ctx = await current_ctx(self)
            await agents.delete_agent(ctx, uuid.UUID(self.delete_id))
        except Exception as err:
            self.deleting = False
            self.delete_open = False
            yield rx.toast.error(user_message(err))
            return
        self.rows = [r for r in self.rows if r.id != self.delete_id]
        self.deleting = False
        self.delete_open = False
        yield rx.toast.success(f"Agent '{self.delete_name}' deleted.")
