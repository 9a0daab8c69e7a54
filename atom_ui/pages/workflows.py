"""/workflows: the workspace's workflows; /workflows/new and /workflows/<id>: the
spec editor with live validation and the step graph; "Run" asks for the inputs."""

from __future__ import annotations

import reflex as rx

from atom_core.seed import DEMO_WORKFLOWS
from atom_ui.components.dag_graph import dag_graph
from atom_ui.components.empty_state import empty_state
from atom_ui.components.feedback import alert, loaded_body, spinner_block
from atom_ui.components.page import page_frame, page_header
from atom_ui.components.pager import cursor_pager
from atom_ui.components.table import data_table
from atom_ui.components.workflow_run_dialog import run_dialog
from atom_ui.components.workflow_status import type_legend
from atom_ui.state import AuthState
from atom_ui.states.workflows import NEW, WorkflowEditorState, WorkflowRow, WorkflowRunState, WorkflowsState

L = WorkflowsState
E = WorkflowEditorState
CAN_WRITE = AuthState.role != "viewer"
DEMOS = tuple(sorted(p.stem for p in DEMO_WORKFLOWS.glob("*.yaml")))  # read once, at import

ON_LOAD = [L.load]


# ---------------------------------------------------------------------- list


def _row(row: WorkflowRow) -> rx.Component:
    return rx.table.row(
        rx.table.row_header_cell(
            rx.vstack(
                rx.link(row.name, href="/workflows/" + row.id, weight="medium"),
                rx.cond(row.description != "", rx.text(row.description, size="1", color_scheme="gray")),
                spacing="1",
                max_width="28rem",
            ),
        ),
        rx.table.cell(rx.badge("v" + row.version.to_string(), variant="surface", color_scheme="gray")),
        rx.table.cell(rx.text(row.updated, size="2", white_space="nowrap")),
        rx.table.cell(
            rx.hstack(
                rx.cond(
                    CAN_WRITE,
                    rx.button(
                        rx.icon("play", size=14),
                        "Run",
                        size="1",
                        aria_label="Run " + row.name,
                        on_click=WorkflowRunState.open_for(row.id),
                    ),
                ),
                rx.link(
                    rx.button(rx.icon("pencil", size=14), "Edit", size="1", variant="soft"),
                    href="/workflows/" + row.id,
                    aria_label="Edit " + row.name,
                ),
                spacing="2",
                justify="end",
            )
        ),
        data_testid="workflow-row-" + row.name,
        align="center",
    )


def _table() -> rx.Component:
    return rx.vstack(
        data_table(
            ("Name", "Latest version", "Updated", rx.el.span("Actions", class_name="rt-sr-only")),
            L.rows,
            _row,
            label="Workflows",
        ),
        cursor_pager(L),
        spacing="3",
        width="100%",
        align="center",
    )


def _demo_link(name: str) -> rx.Component:
    return rx.link(
        rx.button(rx.icon("file_code", size=14), name, variant="soft", size="2"),
        href=f"/workflows/{NEW}?demo={name}",
        aria_label=f"Start from the {name} demo",
    )


def _empty() -> rx.Component:
    return empty_state(
        "workflow",
        "No workflows yet",
        "A workflow chains agents, tools and human approvals into steps that run in order "
        "(or side by side). Write one from scratch, or start from a demo. The demos use the "
        "Data Analyst, Meeting Facilitator and Support Triage agents: install them from the Marketplace first.",
        rx.cond(
            CAN_WRITE,
            rx.vstack(
                rx.link(
                    rx.button(rx.icon("plus", size=16), "New workflow"),
                    href=f"/workflows/{NEW}",
                ),
                rx.flex(*[_demo_link(name) for name in DEMOS], spacing="2", wrap="wrap", justify="center"),
                rx.link("Open the Marketplace", href="/marketplace", size="2"),
                align="center",
                spacing="3",
            ),
            rx.text("Ask a member of this workspace to add one.", size="2", color_scheme="gray"),
        ),
        test_id="workflows-empty",
        detail_width="36rem",
    )


def page() -> rx.Component:
    return page_frame(
        page_header(
            "Workflows",
            "Chain agents, tools and human approvals into repeatable processes.",
            rx.cond(
                CAN_WRITE,
                rx.link(
                    rx.button(rx.icon("plus", size=16), "New workflow", white_space="nowrap"),
                    href=f"/workflows/{NEW}",
                    flex_shrink="0",
                ),
            ),
        ),
        loaded_body(
            rx.cond(L.rows.length() > 0, _table(), _empty()),
            error=L.error,
            waiting=L.loading & (L.rows.length() == 0),
            on_retry=L.load,
        ),
        run_dialog(),
        on_tenant_switch=L.reload_if_tenant_changed,
    )


# -------------------------------------------------------------------- editor


def _check_panel() -> rx.Component:
    return rx.box(
        rx.match(
            E.check,
            (
                "ok",
                rx.callout(
                    E.check_summary,
                    icon="circle_check",
                    color_scheme="green",
                    size="1",
                    width="100%",
                    data_testid="spec-valid",
                ),
            ),
            (
                "error",
                rx.callout.root(
                    rx.callout.icon(rx.icon("circle_alert")),
                    rx.vstack(
                        rx.callout.text(E.check_message, data_testid="spec-error"),
                        rx.cond(
                            E.check_field != "",
                            rx.text(
                                "Field: ",
                                rx.code(E.check_field, data_testid="spec-error-field"),
                                size="1",
                            ),
                        ),
                        spacing="1",
                    ),
                    color_scheme="red",
                    size="1",
                    role="alert",
                    width="100%",
                ),
            ),
            rx.text("Checking…", size="1", color_scheme="gray"),
        ),
        aria_live="polite",
        width="100%",
    )


def _editor_header() -> rx.Component:
    return rx.flex(
        rx.vstack(
            rx.link(
                rx.hstack(rx.icon("arrow_left", size=14), rx.text("Workflows", size="2"), align="center", spacing="1"),
                href="/workflows",
                color_scheme="gray",
            ),
            rx.hstack(
                rx.heading(rx.cond(E.is_new, "New workflow", E.workflow_name), size="7", as_="h1"),
                rx.cond(E.version > 0, rx.badge("v" + E.version.to_string(), variant="surface", color_scheme="gray")),
                rx.cond(E.dirty, rx.badge("Unsaved changes", color_scheme="amber", data_testid="unsaved")),
                align="center",
                spacing="3",
                wrap="wrap",
            ),
            spacing="1",
        ),
        rx.hstack(
            rx.cond(
                ~E.is_new,
                rx.link(
                    rx.button(rx.icon("list_checks", size=16), "Runs", variant="soft", color_scheme="gray"),
                    href="/runs",
                ),
            ),
            rx.cond(
                CAN_WRITE & ~E.is_new,
                rx.button(
                    rx.icon("play", size=16),
                    "Run",
                    variant="soft",
                    on_click=WorkflowRunState.open_for(E.workflow_key),
                    title=rx.cond(E.dirty, "Runs use the last saved version", "Start a run"),
                ),
            ),
            rx.cond(
                CAN_WRITE,
                rx.button(
                    rx.icon("save", size=16),
                    rx.cond(E.is_new, "Save workflow", "Save new version"),
                    on_click=E.save,
                    loading=E.saving,
                    disabled=~E.dirty & ~E.is_new,
                ),
            ),
            spacing="2",
            wrap="wrap",
        ),
        justify="between",
        align="end",
        spacing="3",
        wrap="wrap",
        width="100%",
    )


def _demo_picker() -> rx.Component:
    return rx.cond(
        E.is_new,
        rx.hstack(
            rx.text("Start from a demo:", size="2", color_scheme="gray"),
            rx.foreach(
                E.demo_names,
                lambda name: rx.button(name, size="1", variant="soft", on_click=E.use_demo(name)),
            ),
            align="center",
            spacing="2",
            wrap="wrap",
        ),
    )


def _editor() -> rx.Component:
    return rx.vstack(
        rx.el.label(
            rx.text("Spec (YAML or JSON)", size="2", weight="medium"),
            html_for="workflow-spec",
        ),
        rx.text_area(
            id="workflow-spec",
            value=E.source,
            on_change=E.edit_source.debounce(400),
            spellcheck=False,
            auto_complete=False,
            aria_describedby="workflow-spec-help",
            font_family="var(--code-font-family)",
            size="2",
            rows="24",
            width="100%",
            min_height="28rem",
            resize="vertical",
            read_only=~CAN_WRITE,
            # YAML reads by its indentation: no soft wrapping, scroll sideways instead.
            style={
                "& textarea": {"white_space": "pre", "overflow_wrap": "normal", "overflow_x": "auto", "tab_size": "2"}
            },
        ),
        _check_panel(),
        rx.text(
            "Steps are agent, tool, approval, condition or map steps; depends_on orders them. "
            "Saved specs are kept in canonical form, so comments are not kept.",
            id="workflow-spec-help",
            size="1",
            color_scheme="gray",
        ),
        spacing="2",
        width="100%",
        min_width="0",
    )


def _graph_panel() -> rx.Component:
    return rx.vstack(
        rx.text("Graph", size="2", weight="medium"),
        rx.cond(
            E.nodes.length() > 0,
            dag_graph(E.nodes, E.edges, key=E.graph_key, height="28rem", label="Graph of the workflow's steps"),
            rx.center(
                rx.text("The graph appears when the spec can be read.", size="2", color_scheme="gray"),
                height="28rem",
                width="100%",
                border=f"1px dashed {rx.color('gray', 6)}",
                border_radius="var(--radius-3)",
            ),
        ),
        type_legend(),
        spacing="2",
        width="100%",
        min_width="0",
    )


def editor_page() -> rx.Component:
    return page_frame(
        rx.cond(
            E.load_error != "",
            rx.vstack(rx.link("← Workflows", href="/workflows"), alert(E.load_error), width="100%"),
            rx.cond(
                E.loading,
                spinner_block(),
                rx.vstack(
                    _editor_header(),
                    _demo_picker(),
                    rx.grid(
                        _editor(),
                        _graph_panel(),
                        columns=rx.breakpoints(initial="1", md="2"),
                        spacing="5",
                        width="100%",
                    ),
                    spacing="4",
                    width="100%",
                ),
            ),
        ),
        run_dialog(),
        on_tenant_switch=E.leave_if_tenant_changed,
    )


EXTRA_ROUTES = {"/workflows/[workflow_id]": editor_page}
EXTRA_ON_LOAD = [E.load]
