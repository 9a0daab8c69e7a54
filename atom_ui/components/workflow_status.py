"""Status badges and graph legends for workflows and runs."""

from __future__ import annotations

import reflex as rx

# Run and step statuses -> Radix colour scale (the graph uses the same ones: dag_layout).
STATUS_COLORS = {
    "queued": "gray",
    "pending": "gray",
    "running": "blue",
    "waiting": "amber",
    "succeeded": "green",
    "failed": "red",
    "skipped": "gray",
    "cancelled": "gray",
}
STEP_STATUSES = ("pending", "running", "waiting", "succeeded", "failed", "skipped", "cancelled")
STEP_TYPES = {"agent": "indigo", "tool": "teal", "approval": "amber", "condition": "violet", "map": "cyan"}


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
        *[_swatch(s, STATUS_COLORS[s], dashed=s in ("skipped", "cancelled")) for s in STEP_STATUSES],
        spacing="4",
        wrap="wrap",
        aria_label="Colours by step status",
    )


def type_legend() -> rx.Component:
    return rx.flex(
        *[_swatch(kind, scale) for kind, scale in STEP_TYPES.items()],
        spacing="4",
        wrap="wrap",
        aria_label="Colours by step type",
    )
