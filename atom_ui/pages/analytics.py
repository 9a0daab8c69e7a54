"""/analytics: spend, tokens, latency and success rate over a date range, the
recent runs, and a run's trace (span tree with durations and cost)."""

from __future__ import annotations

import reflex as rx

from atom_ui.components.chart_card import chart_card, kpi_card
from atom_ui.components.dialogs import dialog_header
from atom_ui.components.empty_state import empty_state
from atom_ui.components.feedback import error_callout, spinner_block
from atom_ui.components.page import page_frame, page_header
from atom_ui.components.trace_view import trace_list
from atom_ui.state import AuthState
from atom_ui.states.analytics import PRESETS, AnalyticsState

STATUS_COLORS = {"succeeded": "green", "failed": "red", "cancelled": "gray", "running": "blue"}


def _date_field(label: str, name: str, value: rx.Var[str], on_change: rx.EventHandler) -> rx.Component:
    error = AnalyticsState.field_errors.get(name, "")
    return rx.vstack(
        rx.el.label(rx.text(label, size="2", weight="medium"), html_for=f"analytics-{name}"),
        rx.input(
            id=f"analytics-{name}",
            type="date",
            value=value,
            on_change=on_change,
            aria_invalid=rx.cond(error != "", "true", "false"),
            aria_describedby=f"analytics-{name}-message",
            color_scheme=rx.cond(error != "", "red", "gray"),
        ),
        rx.cond(
            error != "",
            rx.text(
                error, size="1", color_scheme="red", role="alert", id=f"analytics-{name}-message", max_width="16rem"
            ),
        ),
        spacing="1",
    )


def range_filter() -> rx.Component:
    presets = [
        rx.button(
            f"{days} days",
            variant=rx.cond(AnalyticsState.preset == days, "solid", "soft"),
            aria_pressed=rx.cond(AnalyticsState.preset == days, "true", "false"),
            aria_label=f"Last {days} days",
            on_click=AnalyticsState.apply_preset(days),
        )
        for days in PRESETS
    ]
    return rx.card(
        rx.flex(
            _date_field("From", "since", AnalyticsState.from_text, AnalyticsState.set_from),
            _date_field("To", "until", AnalyticsState.to_text, AnalyticsState.set_to),
            rx.button("Apply", on_click=AnalyticsState.apply_range, loading=AnalyticsState.loading),
            rx.separator(orientation="vertical", size="2", display=rx.breakpoints(initial="none", sm="block")),
            rx.hstack(*presets, spacing="2", role="group", aria_label="Date presets"),
            align="end",
            spacing="3",
            wrap="wrap",
        ),
        width="100%",
    )


def kpi_grid() -> rx.Component:
    return rx.grid(
        rx.foreach(AnalyticsState.kpis, lambda k: kpi_card(k.key, k.label, k.value, k.detail)),
        columns=rx.breakpoints(initial="2", sm="3", lg="6"),
        spacing="3",
        width="100%",
    )


def charts() -> rx.Component:
    free = "No spend in this range: every model call was free (e.g. the offline model)."
    return rx.vstack(
        chart_card(
            "Spend per day by model",
            AnalyticsState.spend_by_day,
            testid="chart-spend-by-day",
            has_data=AnalyticsState.has_spend,
            empty_hint=free,
            description="Every model call is counted, including those of runs that failed later.",
        ),
        rx.grid(
            chart_card(
                "Spend by agent",
                AnalyticsState.spend_by_agent,
                testid="chart-spend-by-agent",
                has_data=AnalyticsState.has_spend,
                empty_hint=free,
            ),
            chart_card(
                "Tokens per day",
                AnalyticsState.tokens_by_day,
                testid="chart-tokens",
                has_data=AnalyticsState.has_tokens,
                empty_hint="No tokens used in this range.",
            ),
            chart_card(
                "Latency per agent (p50 / p95)",
                AnalyticsState.latency,
                testid="chart-latency",
                has_data=AnalyticsState.has_latency,
                empty_hint="No finished runs in this range.",
                description="Per run, nearest rank: the median and the 95th percentile of finished runs.",
            ),
            chart_card(
                "Success rate per agent",
                AnalyticsState.success,
                testid="chart-success",
                has_data=AnalyticsState.has_finished,
                empty_hint="No finished runs in this range.",
                description="Succeeded runs out of finished ones (failed and cancelled included).",
            ),
            columns=rx.breakpoints(initial="1", md="2"),
            spacing="4",
            width="100%",
        ),
        spacing="4",
        width="100%",
    )


def _run_row(run: rx.Var) -> rx.Component:
    return rx.table.row(
        rx.table.cell(run.created, white_space="nowrap"),
        rx.table.row_header_cell(run.agent),
        rx.table.cell(
            rx.badge(
                run.status,
                color_scheme=rx.match(run.status, *STATUS_COLORS.items(), "gray"),
                variant="soft",
            )
        ),
        rx.table.cell(run.model),
        rx.table.cell(run.tokens, text_align="right"),
        rx.table.cell(run.cost, text_align="right", white_space="nowrap"),
        rx.table.cell(run.latency, text_align="right", white_space="nowrap"),
        rx.table.cell(
            rx.button(
                rx.icon("list_tree", size=14),
                "Trace",
                size="1",
                variant="soft",
                aria_label="Open trace of run " + run.agent + " at " + run.created,
                on_click=AnalyticsState.open_trace(run.id).stop_propagation,
            )
        ),
        on_click=AnalyticsState.open_trace(run.id),
        cursor="pointer",
        _hover={"background": rx.color("accent", 2)},
        data_testid="recent-run",
    )


def recent_runs() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading("Recent runs", size="3", as_="h2"),
            rx.text("The latest runs in this range; open one to see its trace.", size="1", color_scheme="gray"),
            rx.box(
                rx.table.root(
                    rx.table.header(
                        rx.table.row(
                            *[
                                rx.table.column_header_cell(label, text_align=align)
                                for label, align in (
                                    ("Started", "left"),
                                    ("Agent", "left"),
                                    ("Status", "left"),
                                    ("Model", "left"),
                                    ("Tokens", "right"),
                                    ("Cost", "right"),
                                    ("Latency", "right"),
                                    ("", "left"),
                                )
                            ]
                        )
                    ),
                    rx.table.body(rx.foreach(AnalyticsState.runs, _run_row)),
                    size="1",
                    width="100%",
                ),
                overflow_x="auto",
                width="100%",
            ),
            spacing="2",
            width="100%",
        ),
        width="100%",
    )


def trace_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            dialog_header(AnalyticsState.trace_title, close_label="Close trace"),
            rx.dialog.description(AnalyticsState.trace_summary, size="2", color_scheme="gray"),
            rx.cond(
                AnalyticsState.trace_loading,
                rx.center(rx.spinner(size="3"), padding="2rem"),
                rx.vstack(
                    error_callout(AnalyticsState.trace_error),
                    rx.cond(
                        AnalyticsState.trace_run_error != "",
                        rx.callout(AnalyticsState.trace_run_error, icon="triangle_alert", color_scheme="red"),
                    ),
                    trace_list(AnalyticsState.trace_spans),
                    spacing="3",
                    width="100%",
                    margin_top="1rem",
                ),
            ),
            max_width="48rem",
            data_testid="trace-dialog",
        ),
        open=AnalyticsState.trace_open,
        on_open_change=AnalyticsState.set_trace_open,
    )


def page() -> rx.Component:
    return page_frame(
        page_header("Analytics", "Cost, tokens, latency and success per agent, model and day (UTC)."),
        range_filter(),
        rx.hstack(
            rx.cond(AnalyticsState.loading, rx.spinner(size="1")),
            rx.text(AnalyticsState.shown_range, size="2", color_scheme="gray", data_testid="analytics-range"),
            align="center",
            spacing="2",
        ),
        error_callout(AnalyticsState.error),
        rx.cond(
            AnalyticsState.loaded & (AnalyticsState.shown_tenant == AuthState.tenant_id),
            rx.vstack(
                kpi_grid(),
                rx.cond(
                    AnalyticsState.has_runs,
                    rx.vstack(charts(), recent_runs(), spacing="4", width="100%"),
                    empty_state(
                        "chart_line",
                        "No runs in this range",
                        "Run an agent in the Playground (or with `atom agent run`) and its cost, tokens, latency "
                        "and trace appear here. Free models such as the offline model count too, at $0.",
                    ),
                ),
                spacing="4",
                width="100%",
            ),
            rx.cond(AnalyticsState.error == "", spinner_block()),
        ),
        trace_dialog(),
        on_tenant_switch=AnalyticsState.tenant_changed,
        spacing="4",
        data_testid="analytics-page",
    )


ON_LOAD = [AnalyticsState.load]
