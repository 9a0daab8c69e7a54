"""States of /workflows (the list), /workflows/[workflow_id] (the editor) and
the "Run" dialog both of them open.

The editor validates what is typed through the same service the API uses
(`workflows.check_spec`), debounced in the browser, and draws the step graph
from it; when the spec is invalid the graph still shows what could be read and
outlines the step the error names. YAML is parsed in a worker thread so a
large spec never holds up the event loop.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import reflex as rx

from atom_core.agents import service as agents
from atom_core.context import Ctx
from atom_core.errors import AtomError, Invalid
from atom_core.seed import DEMO_WORKFLOWS
from atom_core.workflows import service as workflows
from atom_core.workflows import spec as specs
from atom_core.workflows.models import Workflow
from atom_ui.components import dag_layout
from atom_ui.components.formatting import preview, when
from atom_ui.components.workflow_format import spec_yaml
from atom_ui.session import current_ctx, user_message
from atom_ui.state import AuthState, _as_uuid
from atom_ui.states.paging import CursorPages

PAGE_SIZE = 25
EDITOR_MAX_CHARS = (
    64_000  # the page state stays small; larger specs (the engine takes 256 KB) go through the CLI or API
)
NEW = "new"
EDITOR_ROUTE = "/workflows"
INPUT_HINTS = {
    "string": "Text",
    "number": "A number",
    "integer": "A whole number",
    "boolean": "true or false",
    "list": 'A JSON list, e.g. ["a", "b"]',
    "object": 'A JSON object, e.g. {"key": "value"}',
}
FREE_INPUT = "run_input_json"  # the one field of a spec that declares no inputs

STARTER = """\
name: my-workflow
description: Say what this workflow does.
inputs: {{topic: string}}
steps:
  - id: research
    agent: {agent}
    input: "Collect the key facts about {{{{ inputs.topic }}}}."
  - id: review
    type: approval
    description: A person checks the research before it is used.
    depends_on: [research]
"""


# ---------------------------------------------------------------- view models


@dataclass
class WorkflowRow:
    id: str = ""
    name: str = ""
    description: str = ""
    version: int = 1
    updated: str = ""


def workflow_row(workflow: Workflow) -> WorkflowRow:
    return WorkflowRow(
        id=str(workflow.id),
        name=workflow.name,
        description=preview(workflow.description, 120),
        version=workflow.latest_version,
        updated=when(workflow.updated_at),
    )


@dataclass
class InputField:
    """One input of the Run dialog."""

    name: str = ""
    kind: str = "string"
    hint: str = ""
    multiline: bool = False


def input_fields(declared: dict[str, str]) -> list[InputField]:
    """The Run dialog's fields for a spec's declared inputs; JSON kinds get a text area."""
    return [
        InputField(name, kind, INPUT_HINTS.get(kind, ""), kind in ("list", "object")) for name, kind in declared.items()
    ]


def run_values(form: dict[str, Any], fields: list[InputField]) -> dict[str, Any]:
    """The run's input from the submitted form: declared inputs as typed text (the
    service converts and checks them), or the free JSON object of a spec without inputs."""
    if fields:
        return {f.name: str(form.get(f.name, "")) for f in fields}
    text = str(form.get(FREE_INPUT, "")).strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise Invalid('the input must be a JSON object, e.g. {"topic": "solar"}', field=FREE_INPUT) from None
    if not isinstance(value, dict):
        raise Invalid('the input must be a JSON object, e.g. {"topic": "solar"}', field=FREE_INPUT)
    return value


def field_key(field: str | None) -> str:
    """A run-input error's field (`input.topic`) as the name of the dialog's input."""
    if field and field.startswith("input."):
        return field[len("input.") :]
    return field or ""


_demo_cache: dict[str, str] = {}


async def demo_specs() -> dict[str, str]:
    """The demo workflows shipped with ATOM (name -> YAML), read once off the event loop."""
    if not _demo_cache:

        def read() -> dict[str, str]:
            return {p.stem: p.read_text(encoding="utf-8") for p in sorted(Path(DEMO_WORKFLOWS).glob("*.yaml"))}

        _demo_cache.update(await asyncio.to_thread(read))
    return dict(_demo_cache)


# ---------------------------------------------------------------------- list


class WorkflowsState(CursorPages, rx.State):
    """/workflows: the tenant's workflows, a page at a time (newest first)."""

    rows: list[WorkflowRow] = []

    async def _page(self, ctx: Ctx, cursor: str | None) -> tuple[list[WorkflowRow], str | None]:
        found = await workflows.list_workflows(ctx, limit=PAGE_SIZE, cursor=cursor)
        return [workflow_row(w) for w in found.items], found.next_cursor


# -------------------------------------------------------------------- editor


class WorkflowEditorState(rx.State):
    """/workflows/new and /workflows/<id>: the spec editor with live validation and the graph."""

    workflow_key: str = ""  # "" while new
    workflow_name: str = ""
    version: int = 0
    source: str = ""
    dirty: bool = False  # `source` differs from what was saved
    _saved: str = ""  # backend only: the page state holds the spec once
    loading: bool = False
    load_error: str = ""

    # Validation of `source`: "" (not checked yet), "ok" or "error".
    check: str = ""
    check_message: str = ""
    check_field: str = ""
    check_summary: str = ""
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    graph_key: str = ""

    saving: bool = False
    demo_names: list[str] = []
    _just_created: bool = False
    _tenant: str = ""

    @rx.var
    def is_new(self) -> bool:
        return not self.workflow_key

    @rx.event
    async def load(self):
        """on_load: the route says which workflow (or `new`, with `?demo=NAME` to start from a demo)."""
        key = self.router.url.path.rstrip("/").rsplit("/", 1)[-1]
        if self._just_created and key == self.workflow_key:
            self._just_created = False  # keep the text as typed (comments and all) after "Save" of a new one
            return
        self._reset()
        self.loading = True
        yield
        try:
            ctx = await current_ctx(self)
            self._tenant = str(ctx.tenant_id)
            demos = await demo_specs()
            self.demo_names = list(demos)
            if key == NEW:
                demo = self.router.url.query_parameters.get("demo", "")
                self.source = demos.get(demo) or await self._starter(ctx)
                self._saved, self.dirty = "", True
            else:
                workflow_id = _as_uuid(key)
                if workflow_id is None:
                    raise Invalid("this workflow does not exist", field="workflow_id")
                view = await workflows.get_workflow(ctx, workflow_id)
                self.workflow_key, self.workflow_name = str(view.workflow.id), view.workflow.name
                self.version = view.version.version
                self.source = self._saved = spec_yaml(view.version.spec)
        except Exception as err:
            self.load_error = user_message(err)
            self.loading = False
            return
        self.loading = False
        await self._check()

    async def _starter(self, ctx) -> str:
        found = await agents.list_agents(ctx, limit=1)
        slug = found.items[0].slug if found.items else "AGENT-SLUG"
        return STARTER.format(agent=slug)

    def _reset(self) -> None:
        self.workflow_key = self.workflow_name = self.source = self._saved = ""
        self.dirty = False
        self.version = 0
        self.load_error = ""
        self.check = self.check_message = self.check_field = self.check_summary = ""
        self.nodes, self.edges, self.graph_key = [], [], ""
        self.saving = False

    @rx.event
    async def leave_if_tenant_changed(self):
        """on_mount of a marker keyed on the workspace: another workspace has not this workflow."""
        auth = await self.get_state(AuthState)
        if self.workflow_key and self._tenant and auth.tenant_id != self._tenant:
            return rx.redirect(EDITOR_ROUTE)
        return None

    @rx.event
    async def edit_source(self, text: str):
        """The editor's debounced on_change."""
        if len(text) > EDITOR_MAX_CHARS:
            self.check, self.check_field = "error", "spec"
            self.check_message = (
                f"This spec has {len(text):,} characters; the editor takes up to {EDITOR_MAX_CHARS:,}. "
                "Save larger specs with `atom workflow create` or the REST API."
            )
            return
        self.source = text
        self.dirty = not self.workflow_key or text != self._saved
        await self._check()

    @rx.event
    async def use_demo(self, name: str):
        demos = await demo_specs()
        if name in demos:
            self.source = demos[name]
            self.dirty = True
            await self._check()

    async def _check(self) -> None:
        raw: Any = None
        try:
            ctx = await current_ctx(self)
            raw = await asyncio.to_thread(specs.parse, self.source)
            spec = await workflows.check_spec(ctx, raw)
        except Invalid as err:
            self.check, self.check_message, self.check_field = "error", user_message(err), err.field or ""
            if raw is not None:  # readable but not valid: draw what is there, outline the culprit
                steps = dag_layout.steps_from_spec(raw)
                self._draw(steps, dag_layout.error_step_id(err.field, steps))
            return
        except Exception as err:
            self.check, self.check_message, self.check_field = "error", user_message(err), ""
            return
        steps = dag_layout.steps_from_spec(specs.dump(spec))
        self.check, self.check_message, self.check_field = "ok", "", ""
        inputs = ", ".join(spec.inputs) or "none declared"
        self.check_summary = f"Valid: {len(spec.steps)} step{'s' if len(spec.steps) != 1 else ''} · inputs: {inputs}"
        self._draw(steps, None)

    def _draw(self, steps: list[dag_layout.StepNode], error_step: str | None) -> None:
        self.nodes, self.edges = dag_layout.graph(steps, error_step=error_step, direction="TB")
        self.graph_key = dag_layout.graph_key(steps) + (f":{error_step}" if error_step else "")

    @rx.event
    async def save(self):
        if self.saving:
            return
        self.saving = True
        yield
        try:
            ctx = await current_ctx(self)
            raw = await asyncio.to_thread(specs.parse, self.source)
            if self.workflow_key:
                view = await workflows.update_workflow(ctx, uuid.UUID(self.workflow_key), raw)
            else:
                view = await workflows.create_workflow(ctx, raw)
        except Invalid as err:
            self.saving = False
            self.check, self.check_message, self.check_field = "error", user_message(err), err.field or ""
            yield rx.toast.error("Not saved: fix the problem shown under the editor.")
            return
        except Exception as err:
            self.saving = False
            yield rx.toast.error(user_message(err))
            return
        self.saving = False
        self._saved, self.dirty = self.source, False
        self.version = view.version.version
        self.workflow_name = view.workflow.name
        if not self.workflow_key:
            self.workflow_key, self._just_created = str(view.workflow.id), True
            yield rx.redirect(f"{EDITOR_ROUTE}/{view.workflow.id}", replace=True)
        yield rx.toast.success(f"Saved '{view.workflow.name}', version {view.version.version}.")


# ----------------------------------------------------------------- run dialog


class WorkflowRunState(rx.State):
    """The "Run" dialog: one field per declared input, then off to the run's page."""

    open: bool = False
    workflow_key: str = ""
    workflow_name: str = ""
    version: int = 0
    fields: list[InputField] = []
    field_errors: dict[str, str] = {}
    error: str = ""
    loading: bool = False
    starting: bool = False

    @rx.var
    def free_form(self) -> bool:
        return not self.fields

    @rx.event
    async def open_for(self, workflow_id: str):
        self.open, self.loading = True, True
        self.workflow_key, self.workflow_name, self.version = workflow_id, "", 0
        self.fields, self.field_errors, self.error, self.starting = [], {}, "", False
        yield
        try:
            ctx = await current_ctx(self)
            view = await workflows.get_workflow(ctx, uuid.UUID(workflow_id))
        except Exception as err:
            self.error, self.loading = user_message(err), False
            return
        spec = specs.WorkflowSpec.model_validate(view.version.spec)
        self.workflow_name, self.version = view.workflow.name, view.version.version
        self.fields = input_fields(dict(spec.inputs))
        self.loading = False

    @rx.event
    def set_open(self, value: bool):
        self.open = value

    @rx.event
    async def start(self, form: dict[str, Any]):
        if self.starting or not self.workflow_key:
            return
        self.starting, self.field_errors, self.error = True, {}, ""
        yield
        try:
            ctx = await current_ctx(self)
            values = run_values(form, self.fields)
            run = await workflows.start_run(ctx, uuid.UUID(self.workflow_key), values, version=self.version or None)
        except AtomError as err:
            self.starting = False
            key = field_key(err.field)
            if key and (key == FREE_INPUT or any(f.name == key for f in self.fields)):
                self.field_errors = {key: user_message(err)}
            else:
                self.error = user_message(err)
            return
        except Exception as err:
            self.starting, self.error = False, user_message(err)
            return
        self.starting, self.open = False, False
        yield rx.redirect(f"/runs/{run.id}")
