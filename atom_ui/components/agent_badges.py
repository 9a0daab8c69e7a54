"""Badges shared by the agent and marketplace pages: the model (offline marked as such) and tools."""

from __future__ import annotations

import reflex as rx


def model_badge(label: rx.Var[str], offline: rx.Var[bool]) -> rx.Component:
    """The model, with the offline model marked as such."""
    return rx.badge(
        rx.icon(rx.cond(offline, "wifi_off", "cpu"), size=12),
        label,
        color_scheme=rx.cond(offline, "gray", "iris"),
        variant="soft",
        title=rx.cond(offline, "Runs with no provider: ATOM's deterministic offline model", label),
    )


def tool_badges(tools: rx.Var[list[str]], *, empty: str = "No tools") -> rx.Component:
    return rx.cond(
        tools.length() > 0,
        rx.flex(
            rx.foreach(
                tools,
                lambda tool: rx.badge(rx.icon("wrench", size=12), tool, variant="outline", color_scheme="gray"),
            ),
            wrap="wrap",
            spacing="1",
        ),
        rx.text(empty, size="1", color_scheme="gray"),
    )
