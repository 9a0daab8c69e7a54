"""States of /runs (the list) and /runs/[run_id] (one run, live).

A run page follows its run while it is active: a background event reads the
run's event log (`workflows.events_after`) and reloads the run when there is
something new. The event bus only wakes it early; it polls the log anyway, so
a lost wake-up costs at most one poll interval. It stops when the run ends,
when the page is left (unmount, another route, a closed tab), or when the
session stops being valid.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import reflex as rx

from atom_core.context import Ctx
from atom_core.errors import AtomError, Invalid
from atom_core.infra import events
from atom_core.workflows import engine
from atom_core.workflows import service as workflows
from atom_core.workflows.models import RUN_ACTIVE, StepRun, WorkflowRun
from atom_ui.components import dag_layout
from atom_ui.components.formatting import exact_usd, preview, when
from atom_ui.components.workflow_format import FULL_CHARS, as_text, clip, duration, preview_budget, short_id
from atom_ui.session import current_ctx, user_message
from atom_ui.state import AuthState, _as_uuid
from atom_ui.states.paging import CursorPages

log = logging.getLogger(__name__)

PAGE_SIZE = 25
STEPS_PER_PAGE = 40  # rows of the steps table at a time (a spec may have 200 steps)
STATUS_FILTERS = ("all", *workflows.RUN_STATUSES)
POLL_S = 0.5
REAUTH_S = 30.0  # how often a follower checks that the session is still valid
GONE_S = 15.0  # a tab disconnected this long is closed, not reconnecting
INPUT_CHARS = 4000


# ---------------------------------------------------------------- view models


@dataclass
class RunRow:
    id: str = ""
    short: str = ""
    workflow: str = ""
    version: int = 1
    status: str = ""
    cost: str = ""
    created: str = ""
    took: str = ""
    rerun_of: str = ""


def run_row(run: WorkflowRun, workflow_name: str) -> RunRow:
    return RunRow(
        id=str(run.id),
        short=short_id(run.id),
        workflow=workflow_name,
        version=run.version,
        status=run.status,
        cost=exact_usd(run.cost_micros),
        created=when(run.created_at),
        took=duration(run.started_at or run.created_at, run.finished_at) if run.finished_at else "",
        rerun_of=short_id(run.parent_run_id) if run.parent_run_id else "",
    )


@dataclass
class StepRow:
    """One step of the run page. Only a preview of the output is kept (the page
    state stays small however many steps a run has); the full output and input
    of one step are loaded when the user opens it."""

    step_id: str = ""
    kind: str = ""
    detail: str = ""
    description: str = ""
    status: str = ""
    attempts: int = 0
    cost: str = ""
    took: str = ""
    output_preview: str = ""
    has_output: bool = False
    has_more: bool = False  # the full output (or the input) says more than the preview
    error: str = ""
    reused: bool = False
    decision: str = ""


@dataclass
class SpecStep:
    """What the run page keeps of the run's spec (backend only)."""

    node: dag_layout.StepNode
    description: str = ""


def step_row(row: StepRun, spec_step: SpecStep | None, budget: int) -> StepRow:
    """`budget`: the preview's length (see `preview_budget`)."""
    output, error = as_text(row.output), row.error or ""
    decision = ""
    if row.decision:
        verdict = "approved" if row.decision.get("approved") else "rejected"
        comment = row.decision.get("comment") or ""
        decision = f"{verdict} by {row.decision.get('by', '?')}" + (f": {comment}" if comment else "")
    node = spec_step.node if spec_step else dag_layout.StepNode(row.step_id)
    return StepRow(
        step_id=row.step_id,
        kind=node.type,
        detail=node.detail,
        description=clip(spec_step.description, 300) if spec_step else "",
        status=row.status,
        attempts=row.attempts,
        cost=exact_usd(row.cost_micros),
        took=duration(row.started_at, row.finished_at) if row.started_at and row.finished_at else "",
        output_preview=preview(output, budget),
        has_output=bool(output),
        has_more=len(output) > budget or "\n" in output or row.input is not None or len(error) > 2 * budget,
        error=preview(error, 2 * budget),
        reused=row.reused,
        decision=decision,
    )


def spec_steps(spec: dict[str, Any]) -> list[SpecStep]:
    nodes = dag_layout.steps_from_spec(spec)
    described = {s.get("id"): s.get("description", "") for s in spec.get("steps", []) if isinstance(s, dict)}
    return [SpecStep(node, str(described.get(node.id) or "")) for node in nodes]


# ---------------------------------------------------------------------- list


class RunsState(CursorPages, rx.State):
    """/runs: the tenant's workflow runs, newest first, filtered by status, a page at a time."""

    rows: list[RunRow] = []
    status_filter: str = "all"
    _names: dict[str, str] = {}  # workflow id -> name, filled as pages need them

    @rx.event
    async def set_status_filter(self, value: str):
        self.status_filter = value if value in STATUS_FILTERS else "all"
        await self._first_page()

    async def _page(self, ctx: Ctx, cursor: str | None) -> tuple[list[RunRow], str | None]:
        if str(ctx.tenant_id) != self._tenant:
            self._names = {}
        status = None if self.status_filter == "all" else self.status_filter
        found = await workflows.list_runs(ctx, status=status, limit=PAGE_SIZE, cursor=cursor)
        for workflow_id in {r.workflow_id for r in found.items} - {uuid.UUID(k) for k in self._names}:
            self._names[str(workflow_id)] = (await workflows.get_workflow(ctx, workflow_id)).workflow.name
        return [run_row(r, self._names.get(str(r.workflow_id), "")) for r in found.items], found.next_cursor


# -------------------------------------------------------------------- detail


class RunState(rx.State):
    """/runs/<id>: one run with its steps and graph, followed live while active."""

    run_key: str = ""
    loading: bool = False
    load_error: str = ""
    following: bool = False

    workflow_key: str = ""
    workflow_name: str = ""
    version: int = 0
    status: str = ""
    error: str = ""
    input_text: str = ""
    output_text: str = ""
    cost: str = ""
    saved: str = ""
    saved_any: bool = False
    took: str = ""
    created: str = ""
    finished: str = ""
    parent_key: str = ""
    from_step: str = ""

    steps: list[StepRow] = []  # the shown page of the steps table
    steps_page: int = 1
    step_ids: list[str] = []  # every step, in spec order (the rerun picker)
    waiting_steps: list[StepRow] = []  # steps waiting for a decision, wherever they are in the table
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    graph_key: str = ""

    # The one step whose full output and input are open.
    open_step: str = ""
    open_output: str = ""
    open_input: str = ""
    open_error: str = ""

    comments: dict[str, str] = {}
    deciding: str = ""  # the step a decision is being sent for
    cancelling: bool = False
    rerun_open: bool = False
    rerun_step: str = ""
    rerunning: bool = False
    resuming: bool = False

    _spec: list[SpecStep] = []
    _rows: list[StepRow] = []  # every step's row; `steps` is a page of it
    _last_seq: int = 0
    _follow_gen: int = 0  # a follower stops when this moves on (page left or another run opened)
    _tenant: str = ""

    @rx.var
    def active(self) -> bool:
        return self.status in RUN_ACTIVE

    @rx.var
    def steps_pages(self) -> int:
        return max(1, -(-len(self.step_ids) // STEPS_PER_PAGE))

    # ------------------------------------------------------------ loading

    @rx.event
    async def load(self):
        """on_load of /runs/[run_id]."""
        key = self.router.url.path.rstrip("/").rsplit("/", 1)[-1]
        self._follow_gen += 1
        self._clear(key)
        self.loading = True
        yield
        run_id = _as_uuid(key)
        try:
            if run_id is None:
                raise Invalid("this run does not exist", field="run_id")
            ctx = await current_ctx(self)
            self._tenant = str(ctx.tenant_id)
            view = await workflows.get_run(ctx, run_id)
            definition = await workflows.get_workflow(ctx, view.run.workflow_id, view.run.version)
        except Exception as err:
            self.load_error, self.loading = user_message(err), False
            return
        self.workflow_key, self.workflow_name = str(definition.workflow.id), definition.workflow.name
        self._spec = spec_steps(definition.version.spec)
        self._last_seq = view.run.event_seq
        self._apply(view)
        self.loading = False
        if self.active:
            yield RunState.follow

    def _clear(self, key: str) -> None:
        self.run_key, self.load_error, self.following = key, "", False
        self.workflow_key = self.workflow_name = self.status = self.error = ""
        self.input_text = self.output_text = self.cost = self.saved = self.took = ""
        self.created = self.finished = self.parent_key = self.from_step = ""
        self.version, self.saved_any = 0, False
        self.steps, self.nodes, self.edges, self.graph_key = [], [], [], ""
        self.steps_page, self.step_ids, self.waiting_steps, self._rows = 1, [], [], []
        self.comments, self.deciding, self.cancelling = {}, "", False
        self.open_step = self.open_output = self.open_input = self.open_error = ""
        self.rerun_open, self.rerun_step, self.rerunning, self.resuming = False, "", False, False
        self._spec, self._last_seq = [], 0

    def _apply(self, view: workflows.RunView) -> None:
        run = view.run
        self.status, self.error, self.version = run.status, run.error or "", run.version
        self.input_text = clip(as_text(run.input), INPUT_CHARS)
        self.output_text = clip(as_text(run.output), 8000)
        self.cost, self.saved = exact_usd(run.cost_micros), exact_usd(run.saved_micros)
        self.saved_any = bool(run.parent_run_id)
        self.took = duration(run.started_at or run.created_at, run.finished_at)
        self.created, self.finished = when(run.created_at), when(run.finished_at)
        self.parent_key = str(run.parent_run_id) if run.parent_run_id else ""
        self.from_step = run.from_step or ""
        by_id = {s.node.id: s for s in self._spec}
        budget = preview_budget(len(view.steps))
        self._rows = [step_row(row, by_id.get(row.step_id), budget) for row in view.steps]
        self.step_ids = [row.step_id for row in self._rows]
        self.waiting_steps = [row for row in self._rows if row.status == "waiting"]
        self._show_page(self.steps_page)
        opened = next((row for row in view.steps if row.step_id == self.open_step), None)
        if opened is not None:
            self._show(opened)
        statuses = {row.step_id: row.status for row in view.steps}
        nodes = [s.node for s in self._spec]
        self.nodes, self.edges = dag_layout.graph(nodes, statuses)
        self.graph_key = dag_layout.graph_key(nodes)
        if self.rerun_step not in statuses:
            self.rerun_step = view.steps[0].step_id if view.steps else ""

    # ------------------------------------------------------------ following

    @rx.event(background=True)
    async def follow(self):
        async with self:
            generation, key = self._follow_gen, self.run_key
            if self.following or not self.active:
                return
            self.following = True
            try:
                ctx = await current_ctx(self)
            except Exception:
                self.following = False
                return
            after = self._last_seq
        run_id = uuid.UUID(key)
        wake = asyncio.Event()
        pump = asyncio.create_task(_wake_on_publish(ctx.tenant_id, run_id, wake))
        checked = time.monotonic()
        gone_since: float | None = None  # when the browser tab was first seen disconnected
        try:
            while True:
                wake.clear()  # before reading: a publish during the read still wakes the next wait
                try:
                    rows = await workflows.events_after(ctx, run_id, after)
                    view = await workflows.get_run(ctx, run_id) if rows else None
                except AtomError as err:
                    async with self:
                        if generation == self._follow_gen:
                            self.load_error = user_message(err)
                    return
                async with self:
                    if generation != self._follow_gen or not self._on_this_page(key):
                        return
                    if _client_connected(self.router.session.client_token):
                        gone_since = None
                    elif gone_since is None:
                        gone_since = time.monotonic()
                    elif time.monotonic() - gone_since > GONE_S:  # not a reconnect: the tab is closed
                        return
                    if view is not None:
                        after = self._last_seq = rows[-1].seq
                        self._apply(view)
                        if view.run.status not in RUN_ACTIVE:
                            return
                    if time.monotonic() - checked > REAUTH_S:
                        checked = time.monotonic()
                        try:
                            ctx = await current_ctx(self)
                        except AtomError:
                            return
                if view is not None and len(rows) >= 500:
                    continue  # more events are waiting in the log
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), POLL_S)
        finally:
            pump.cancel()
            with contextlib.suppress(Exception):
                async with self:
                    if generation == self._follow_gen:
                        self.following = False

    def _on_this_page(self, key: str) -> bool:
        """The browser is still on this run's page (another page's events move the router on)."""
        return self.run_key == key and self.router.url.path.rstrip("/").endswith(f"/runs/{key}")

    @rx.event
    async def leave_if_tenant_changed(self):
        """on_mount of a marker keyed on the workspace: another workspace has not this run."""
        auth = await self.get_state(AuthState)
        if self._tenant and auth.tenant_id != self._tenant:
            self._follow_gen += 1
            return rx.redirect("/runs")
        return None

    @rx.event
    def stop_following(self):
        """on_unmount of the run page."""
        self._follow_gen += 1
        self.following = False

    # ------------------------------------------------------------ actions

    def _show_page(self, number: int) -> None:
        pages = max(1, -(-len(self._rows) // STEPS_PER_PAGE))
        self.steps_page = min(max(1, number), pages)
        start = (self.steps_page - 1) * STEPS_PER_PAGE
        self.steps = self._rows[start : start + STEPS_PER_PAGE]

    @rx.event
    def show_steps_page(self, number: int):
        self._show_page(number)

    def _show(self, row: StepRun) -> None:
        self.open_output = clip(as_text(row.output), FULL_CHARS)
        self.open_input = clip(as_text(row.input), INPUT_CHARS)
        self.open_error = row.error or ""

    @rx.event
    async def toggle_output(self, step_id: str):
        """Open one step's full output and input (closing the one open before), or close it."""
        if self.open_step == step_id:
            self.open_step = self.open_output = self.open_input = self.open_error = ""
            return
        try:
            ctx = await current_ctx(self)
            view = await workflows.get_run(ctx, uuid.UUID(self.run_key))
        except Exception as err:
            yield rx.toast.error(user_message(err))
            return
        row = next((r for r in view.steps if r.step_id == step_id), None)
        if row is not None:
            self.open_step = step_id
            self._show(row)

    @rx.event
    def set_comment(self, step_id: str, text: str):
        self.comments = {**self.comments, step_id: text[: workflows.COMMENT_MAX]}

    @rx.event
    async def decide(self, step_id: str, approved: bool):
        if self.deciding:
            return
        self.deciding = step_id
        yield
        try:
            ctx = await current_ctx(self)
            comment = self.comments.get(step_id, "").strip() or None
            view = await workflows.decide(ctx, uuid.UUID(self.run_key), step_id, approved, comment)
        except Exception as err:
            self.deciding = ""
            yield rx.toast.error(user_message(err))
            return
        self.deciding = ""
        self._last_seq = max(self._last_seq, view.run.event_seq)
        self._apply(view)
        verdict = "approved" if approved else "rejected"
        yield rx.toast.success(f"Step '{step_id}' {verdict}.")
        if self.active:
            yield RunState.follow

    @rx.event
    async def cancel(self):
        if self.cancelling:
            return
        self.cancelling = True
        yield
        try:
            ctx = await current_ctx(self)
            await workflows.cancel_run(ctx, uuid.UUID(self.run_key))
            view = await workflows.get_run(ctx, uuid.UUID(self.run_key))
        except Exception as err:
            self.cancelling = False
            yield rx.toast.error(user_message(err))
            return
        self.cancelling = False
        self._apply(view)
        yield rx.toast.success("Run cancelled.")

    @rx.event
    async def resume(self):
        if self.resuming:
            return
        self.resuming = True
        yield
        try:
            ctx = await current_ctx(self)
            view = await workflows.resume_run(ctx, uuid.UUID(self.run_key))
        except Exception as err:
            self.resuming = False
            yield rx.toast.error(user_message(err))
            return
        self.resuming = False
        self._apply(view)
        yield rx.toast.success("Run resumed from its unfinished steps.")
        if self.active:
            yield RunState.follow

    @rx.event
    def set_rerun_open(self, value: bool):
        self.rerun_open = value

    @rx.event
    def set_rerun_step(self, value: str):
        self.rerun_step = value

    @rx.event
    async def rerun(self):
        if self.rerunning:
            return
        self.rerunning = True
        yield
        try:
            ctx = await current_ctx(self)
            run = await workflows.rerun(ctx, uuid.UUID(self.run_key), self.rerun_step)
        except Exception as err:
            self.rerunning = False
            yield rx.toast.error(user_message(err))
            return
        self.rerunning, self.rerun_open = False, False
        yield rx.toast.success(
            f"Rerun from '{self.rerun_step}' started; reusing the steps before it saved {exact_usd(run.saved_micros)}."
        )
        yield rx.redirect(f"/runs/{run.id}")


async def _wake_on_publish(tenant_id: uuid.UUID, run_id: uuid.UUID, wake: asyncio.Event) -> None:
    topic = events.channel(tenant_id, engine.run_topic(run_id))
    with contextlib.suppress(Exception):  # without the bus the follower still polls
        async for _ in events.get_bus().subscribe(topic):
            wake.set()


_namespace: list[Any] = []  # the app's websocket namespace, looked up once


def _client_connected(client_token: str) -> bool:
    """False once the browser tab behind this state has disconnected (closed, or
    gone elsewhere); True when that cannot be told (e.g. outside a running app)."""
    if not _namespace:
        try:
            from reflex.utils.prerequisites import get_and_validate_app

            _namespace.append(get_and_validate_app().app.event_namespace)
        except Exception:
            return True
    namespace = _namespace[0]
    if namespace is None or not client_token:
        return True
    return client_token in namespace.token_to_sid
