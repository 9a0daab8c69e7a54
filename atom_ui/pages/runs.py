"""/runs: workflow runs with a status filter; /runs/<id>: one run, live while it is
active: the graph coloured by step status, the steps with their outputs, errors,
attempts and cost, approvals, cancel, resume and rerun from a step."""

from __future__ import annotations

import reflex as rx

from atom_ui.components.dag_graph import dag_graph
from atom_ui.components.dialogs import confirm_dialog, dialog_buttons
from atom_ui.components.empty_state import empty_state
from atom_ui.components.feedback import alert, loaded_body, spinner_block
from atom_ui.components.page import page_frame, page_header, tenant_watch
from atom_ui.components.pager import cursor_pager, pager
from atom_ui.components.table import data_table
from atom_ui.components.workflow_status import status_badge, status_legend
from atom_ui.state import AuthState
from atom_ui.states.runs import STATUS_FILTERS, RunRow, RunsState, RunState, StepRow

L = RunsState
R = RunState
CAN_RUN = AuthState.role != "viewer"

ON_LOAD = [L.load]


# ---------------------------------------------------------------------- list


def _row(row: RunRow) -> rx.Component:
    return rx.table.row(
        rx.table.row_header_cell(
            rx.link(rx.code(row.short), href="/runs/" + row.id, aria_label="Open run " + row.short),
        ),
        rx.table.cell(
            rx.vstack(
                rx.text(row.workflow, weight="medium"),
                rx.hstack(
                    rx.text("v" + row.version.to_string(), size="1", color_scheme="gray"),
                    rx.cond(row.rerun_of != "", rx.text("rerun of " + row.rerun_of, size="1", color_scheme="gray")),
                    spacing="2",
                ),
                spacing="0",
            )
        ),
        rx.table.cell(status_badge(row.status)),
        rx.table.cell(rx.text(row.cost, size="2")),
        rx.table.cell(rx.text(row.created, size="2", white_space="nowrap")),
        rx.table.cell(rx.text(row.took, size="2", white_space="nowrap")),
        data_testid="run-row-" + row.id,
        align="center",
    )


def _filter() -> rx.Component:
    return rx.hstack(
        rx.select.root(
            rx.select.trigger(aria_label="Filter by status", min_width="10rem"),
            rx.select.content(
                *[rx.select.item("All statuses" if s == "all" else s.capitalize(), value=s) for s in STATUS_FILTERS]
            ),
            value=L.status_filter,
            on_change=L.set_status_filter,
        ),
        rx.icon_button(
            rx.icon("refresh_cw", size=16),
            variant="soft",
            color_scheme="gray",
            aria_label="Refresh",
            title="Refresh",
            loading=L.loading,
            on_click=L.load,
        ),
        spacing="2",
        align="center",
    )


def _empty() -> rx.Component:
    return empty_state(
        "list_checks",
        rx.cond(L.status_filter == "all", "No runs yet", "No " + L.status_filter + " runs"),
        "Runs appear here as soon as a workflow starts. Open a workflow and press Run.",
        rx.link(rx.button(rx.icon("workflow", size=16), "Go to Workflows"), href="/workflows"),
        test_id="runs-empty",
    )


def _list_body() -> rx.Component:
    return loaded_body(
        rx.cond(
            L.rows.length() > 0,
            rx.vstack(
                data_table(("Run", "Workflow", "Status", "Cost", "Started", "Took"), L.rows, _row, label="Runs"),
                cursor_pager(L),
                spacing="3",
                width="100%",
                align="center",
            ),
            _empty(),
        ),
        error=L.error,
        waiting=L.loading & (L.rows.length() == 0),
    )


def page() -> rx.Component:
    return page_frame(
        page_header("Runs", "Every workflow run, with its status, steps and cost.", _filter()),
        _list_body(),
        on_tenant_switch=L.reload_if_tenant_changed,
    )


# -------------------------------------------------------------------- detail


def _stat(label: str, value: rx.Component | rx.Var, test_id: str) -> rx.Component:
    return rx.vstack(
        rx.text(label, size="1", color_scheme="gray"),
        rx.box(value, data_testid=test_id),
        spacing="1",
        min_width="7rem",
    )


def _cancel_button() -> rx.Component:
    return confirm_dialog(
        "Cancel this run?",
        "Steps that have not finished are cancelled and nothing more is scheduled. "
        "Finished steps keep their results; you can resume or rerun the run later.",
        trigger=rx.button(rx.icon("circle_stop", size=16), "Cancel run", color_scheme="red", variant="soft"),
        confirm_label="Cancel run",
        on_confirm=R.cancel,
        loading=R.cancelling,
        cancel_label="Keep running",
        close_on_confirm=True,
    )


def _rerun_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.trigger(rx.button(rx.icon("rotate_ccw", size=16), "Rerun from a step", variant="soft")),
        rx.dialog.content(
            rx.dialog.title("Rerun from a step"),
            rx.dialog.description(
                "A new run of the same version: the chosen step and everything after it run again; "
                "finished steps before it are reused, with their outputs and cost (what that saves is shown).",
                size="2",
                color_scheme="gray",
            ),
            rx.vstack(
                rx.el.label(rx.text("Step", size="2", weight="medium"), html_for="rerun-step"),
                rx.select.root(
                    rx.select.trigger(id="rerun-step", aria_label="Step to rerun from", width="100%"),
                    rx.select.content(rx.foreach(R.step_ids, lambda sid: rx.select.item(sid, value=sid))),
                    value=R.rerun_step,
                    on_change=R.set_rerun_step,
                ),
                dialog_buttons(
                    rx.button(rx.icon("rotate_ccw", size=16), "Rerun", on_click=R.rerun, loading=R.rerunning),
                ),
                spacing="3",
                padding_top="1rem",
                width="100%",
            ),
            max_width="28rem",
        ),
        open=R.rerun_open,
        on_open_change=R.set_rerun_open,
    )


def _actions() -> rx.Component:
    return rx.cond(
        CAN_RUN,
        rx.hstack(
            rx.cond(R.active, _cancel_button()),
            rx.cond(
                (R.status == "failed") | (R.status == "cancelled"),
                rx.button(rx.icon("play", size=16), "Resume", variant="soft", on_click=R.resume, loading=R.resuming),
            ),
            rx.cond(~R.active, _rerun_dialog()),
            spacing="2",
            wrap="wrap",
        ),
    )


def _header() -> rx.Component:
    return rx.vstack(
        rx.link(
            rx.hstack(rx.icon("arrow_left", size=14), rx.text("Runs", size="2"), align="center", spacing="1"),
            href="/runs",
            color_scheme="gray",
        ),
        rx.flex(
            rx.vstack(
                rx.hstack(
                    rx.heading(R.workflow_name, size="7", as_="h1"),
                    status_badge(R.status, size="2", data_testid="run-status"),
                    rx.cond(
                        R.following,
                        rx.badge(rx.icon("radio", size=12), "Live", color_scheme="blue", variant="outline"),
                    ),
                    align="center",
                    spacing="3",
                    wrap="wrap",
                ),
                rx.text(
                    "Run ",
                    rx.code(R.run_key),
                    " · version ",
                    R.version.to_string(),
                    rx.cond(
                        R.parent_key != "",
                        rx.fragment(
                            " · rerun of ",
                            rx.link(rx.code(R.parent_key[:8]), href="/runs/" + R.parent_key),
                            " from ",
                            rx.code(R.from_step),
                        ),
                    ),
                    size="2",
                    color_scheme="gray",
                ),
                spacing="1",
            ),
            _actions(),
            justify="between",
            align="end",
            spacing="3",
            wrap="wrap",
            width="100%",
        ),
        spacing="2",
        width="100%",
    )


def _totals() -> rx.Component:
    return rx.card(
        rx.flex(
            _stat("Status", rx.text(R.status, weight="medium"), "run-total-status"),
            _stat("Cost", rx.text(R.cost, weight="medium"), "run-total-cost"),
            _stat("Duration", rx.text(rx.cond(R.took != "", R.took, "—"), weight="medium"), "run-total-duration"),
            _stat("Started", rx.text(R.created, size="2"), "run-total-started"),
            rx.cond(
                R.saved_any,
                _stat("Saved by reuse", rx.text(R.saved, weight="medium", color_scheme="green"), "run-total-saved"),
            ),
            spacing="5",
            wrap="wrap",
        ),
        width="100%",
    )


def _approval(step: StepRow) -> rx.Component:
    comment_id = "comment-" + step.step_id
    return rx.callout.root(
        rx.callout.icon(rx.icon("hand")),
        rx.vstack(
            rx.text(
                "Step ",
                rx.code(step.step_id),
                " is waiting for a decision.",
                weight="medium",
            ),
            rx.cond(step.description != "", rx.text(step.description, size="2")),
            rx.el.label(rx.text("Comment (optional)", size="1"), html_for=comment_id),
            rx.text_area(
                id=comment_id,
                value=R.comments.get(step.step_id, ""),
                on_change=lambda text: R.set_comment(step.step_id, text),
                rows="2",
                width="100%",
                max_length=2000,
            ),
            rx.cond(
                CAN_RUN,
                rx.hstack(
                    rx.button(
                        rx.icon("check", size=16),
                        "Approve",
                        color_scheme="green",
                        loading=R.deciding == step.step_id,
                        on_click=R.decide(step.step_id, True),
                        aria_label="Approve " + step.step_id,
                    ),
                    rx.button(
                        rx.icon("x", size=16),
                        "Reject",
                        color_scheme="red",
                        variant="soft",
                        loading=R.deciding == step.step_id,
                        on_click=R.decide(step.step_id, False),
                        aria_label="Reject " + step.step_id,
                    ),
                    spacing="2",
                ),
            ),
            spacing="2",
            width="100%",
        ),
        color_scheme="amber",
        width="100%",
        data_testid="approval-" + step.step_id,
    )


def _pre(text: rx.Var[str], max_height: str) -> rx.Component:
    return rx.el.pre(
        text,
        white_space="pre-wrap",
        word_break="break-word",
        font_size="12px",
        font_family="var(--code-font-family)",
        max_height=max_height,
        overflow_y="auto",
        padding="0.5rem",
        margin="0",
        background=rx.color("gray", 2),
        border_radius="var(--radius-2)",
    )


def _output_cell(step: StepRow) -> rx.Component:
    is_open = R.open_step == step.step_id
    return rx.vstack(
        rx.cond(
            step.has_output,
            rx.text(step.output_preview, size="2"),
            rx.text("—", color_scheme="gray"),
        ),
        rx.cond(
            step.has_more,
            rx.button(
                rx.icon(rx.cond(is_open, "chevron_up", "chevron_down"), size=14),
                rx.cond(is_open, "Hide", "Show full output"),
                variant="ghost",
                size="1",
                aria_expanded=rx.cond(is_open, "true", "false"),
                aria_label=rx.cond(is_open, "Hide the output of ", "Show the full output of ") + step.step_id,
                on_click=R.toggle_output(step.step_id),
            ),
        ),
        rx.cond(
            is_open,
            rx.vstack(
                rx.cond(R.open_output != "", _pre(R.open_output, "24rem")),
                rx.cond(R.open_error != "", rx.text(R.open_error, size="1", color_scheme="red")),
                rx.cond(
                    R.open_input != "",
                    rx.vstack(
                        rx.text("Input", size="1", color_scheme="gray"), _pre(R.open_input, "12rem"), spacing="1"
                    ),
                ),
                spacing="2",
                width="100%",
                data_testid="step-output-" + step.step_id,
            ),
        ),
        spacing="1",
        max_width="32rem",
    )


def _step_row(step: StepRow) -> rx.Component:
    return rx.table.row(
        rx.table.row_header_cell(
            rx.vstack(
                rx.code(step.step_id, variant="ghost", weight="medium"),
                rx.text(
                    step.kind,
                    rx.cond(step.detail != "", " · " + step.detail, ""),
                    size="1",
                    color_scheme="gray",
                ),
                spacing="0",
            )
        ),
        rx.table.cell(
            rx.vstack(
                status_badge(step.status, data_testid="step-status-" + step.step_id),
                rx.cond(step.reused, rx.badge("reused", color_scheme="gray", variant="outline", size="1")),
                spacing="1",
            )
        ),
        rx.table.cell(step.attempts.to_string()),
        rx.table.cell(rx.text(step.cost, size="2", white_space="nowrap")),
        rx.table.cell(rx.text(step.took, size="2", white_space="nowrap")),
        rx.table.cell(
            rx.vstack(
                _output_cell(step),
                rx.cond(step.decision != "", rx.text(step.decision, size="1", color_scheme="gray")),
                rx.cond(
                    step.error != "",
                    rx.text(step.error, size="1", color_scheme="red", data_testid="step-error-" + step.step_id),
                ),
                spacing="1",
                min_width="16rem",
            )
        ),
        data_testid="step-row-" + step.step_id,
        align="start",
    )


def _steps_pager() -> rx.Component:
    return pager(
        visible=R.steps_pages > 1,
        page_text=rx.text(
            "Page ", R.steps_page.to_string(), " of ", R.steps_pages.to_string(), size="2", color_scheme="gray"
        ),
        has_previous=R.steps_page > 1,
        has_next=R.steps_page < R.steps_pages,
        on_previous=R.show_steps_page(R.steps_page - 1),
        on_next=R.show_steps_page(R.steps_page + 1),
        previous_label="Previous steps",
        next_label="Next steps",
    )


def _steps_table() -> rx.Component:
    return data_table(
        ("Step", "Status", "Attempts", "Cost", "Took", "Output / error"), R.steps, _step_row, label="Steps"
    )


def _io_block(title: str, text: rx.Var[str], test_id: str) -> rx.Component:
    return rx.cond(
        text != "",
        rx.el.details(
            rx.el.summary(rx.text(title, size="2", weight="medium", as_="span"), cursor="pointer"),
            rx.box(_pre(text, "24rem"), padding_top="0.5rem"),
            open=True,
            data_testid=test_id,
            width="100%",
        ),
    )


def _detail() -> rx.Component:
    return rx.vstack(
        _header(),
        _totals(),
        rx.cond(
            R.error != "",
            rx.callout(R.error, icon="circle_alert", color_scheme="red", width="100%", data_testid="run-error"),
        ),
        rx.foreach(R.waiting_steps, _approval),
        rx.vstack(
            rx.heading("Graph", size="4", as_="h2"),
            dag_graph(R.nodes, R.edges, key=R.graph_key, height="20rem", label="Graph of the run's steps"),
            status_legend(),
            spacing="2",
            width="100%",
        ),
        rx.vstack(
            rx.heading("Steps", size="4", as_="h2"),
            _steps_table(),
            rx.center(_steps_pager(), width="100%"),
            spacing="2",
            width="100%",
        ),
        _io_block("Run input", R.input_text, "run-input"),
        _io_block("Run output", R.output_text, "run-output"),
        spacing="5",
        width="100%",
    )


def detail_page() -> rx.Component:
    return rx.box(
        tenant_watch(R.leave_if_tenant_changed),
        rx.cond(
            R.load_error != "",
            rx.vstack(rx.link("← Runs", href="/runs"), alert(R.load_error), width="100%", spacing="3"),
            rx.cond(R.loading | (R.status == ""), spinner_block(), _detail()),
        ),
        on_unmount=R.stop_following,
        width="100%",
    )


EXTRA_ROUTES = {"/runs/[run_id]": detail_page}
EXTRA_ON_LOAD = [R.load]
