"""/analytics: a placeholder until cost and trace analytics land."""

from __future__ import annotations

import reflex as rx

from atom_ui.components.empty_state import placeholder_page


def page() -> rx.Component:
    return placeholder_page(
        title="Analytics",
        summary="Cost, tokens and latency per agent, model and day.",
        icon="chart_line",
        headline="No usage to show yet",
        detail=(
            "Charts fill in after the first runs. Every model call will be counted, including the free offline model."
        ),
    )
