"""A run's span tree as an indented waterfall: one row per span with its
duration, cost and a bar placed on the run's timeline."""

from __future__ import annotations

import reflex as rx

KIND_ICONS = {"run": "play", "llm.call": "sparkles", "tool.call": "wrench", "memory.recall": "brain"}


def _kind_icon(kind: rx.Var[str]) -> rx.Component:
    return rx.match(
        kind,
        *[(name, rx.icon(icon, size=14, flex_shrink="0")) for name, icon in KIND_ICONS.items()],
        rx.icon("circle", size=14, flex_shrink="0"),
    )


def trace_row(span: rx.Var) -> rx.Component:
    failed = span.status == "error"
    return rx.box(
        rx.hstack(
            rx.hstack(
                rx.box(width=span.indent, flex_shrink="0"),
                _kind_icon(span.kind),
                rx.vstack(
                    rx.hstack(
                        rx.text(span.name, size="2", weight="medium", trim="both"),
                        rx.badge(span.kind, variant="soft", size="1", color_scheme=rx.cond(failed, "red", "gray")),
                        spacing="2",
                        align="center",
                        wrap="wrap",
                    ),
                    rx.cond(span.detail != "", rx.text(span.detail, size="1", color_scheme="gray")),
                    rx.cond(span.error != "", rx.text(span.error, size="1", color_scheme="red", role="alert")),
                    spacing="0",
                    min_width="0",
                ),
                align="start",
                spacing="2",
                flex="1",
                min_width="0",
            ),
            rx.vstack(
                rx.text(span.duration, size="2", data_testid="span-duration", white_space="nowrap"),
                rx.text(span.cost, size="1", color_scheme="gray", data_testid="span-cost", white_space="nowrap"),
                align="end",
                spacing="0",
                flex_shrink="0",
            ),
            width="100%",
            align="start",
            spacing="3",
        ),
        rx.box(  # the waterfall: where this span sits in the run's time
            rx.box(
                position="absolute",
                left=span.offset,
                width=span.width,
                top="0",
                bottom="0",
                border_radius="var(--radius-1)",
                background=rx.cond(failed, rx.color("red", 9), rx.color("accent", 9)),
            ),
            position="relative",
            height="6px",
            margin_top="0.375rem",
            border_radius="var(--radius-1)",
            background=rx.color("gray", 4),
            aria_hidden="true",
        ),
        data_testid="trace-span",
        padding="0.5rem 0",
        border_bottom=f"1px solid {rx.color('gray', 4)}",
        width="100%",
    )


def trace_list(spans: rx.Var) -> rx.Component:
    return rx.vstack(rx.foreach(spans, trace_row), spacing="0", width="100%", data_testid="trace-spans")
