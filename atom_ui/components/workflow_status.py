"""Status badges and graph legends for workflows and runs."""

from __future__ import annotations

import reflex as rx

from atom_ui.components.dag_layout import MUTED_STATUSES, STEP_STATUS_COLORS, STEP_TYPE_COLORS

# Run and step statuses -> Radix colour scale: the graph's (dag_layout), and "queued" for runs.
STATUS_COLORS = {"queued": "gray", **STEP_STATUS_COLORS}
STEP_STATUSES = tuple(STEP_STATUS_COLORS)


def status_badge(status: rx.Var[str], **props) -> rx.Component:
    return rx.badge(
        rx.cond(status == "running", rx.spinner(size="1"), rx.fragment()),
        status,
        color_scheme=rx.match(status, *STATUS_COLORS.items(), "gray"),
        variant=rx.cond((status == "skipped") | (status == "cancelled"), "outline", "soft"),
        **props,
    )


def _swatch(label: str, scale: str, *, dashed: bool = False) -> rx.Component:
    return rx.hstack(
        rx.box(
            width="0.75rem",
            height="0.75rem",
            border_radius="3px",
            background=f"var(--{scale}-3)",
            border=f"2px {'dashed' if dashed else 'solid'} var(--{scale}-9)",
        ),
        rx.text(label, size="1", color_scheme="gray"),
        align="center",
        spacing="1",
    )


def status_legend() -> rx.Component:
    return rx.flex(
        *[_swatch(s, STATUS_COLORS[s], dashed=s in MUTED_STATUSES) for s in STEP_STATUSES],
        spacing="4",
        wrap="wrap",
        aria_label="Colours by step status",
    )


def type_legend() -> rx.Component:
    return rx.flex(
        *[_swatch(kind, scale) for kind, scale in STEP_TYPE_COLORS.items()],
        spacing="4",
        wrap="wrap",
        aria_label="Colours by step type",
    )
