"""/workflows: a placeholder until the workflows lands."""

from __future__ import annotations

import reflex as rx

from atom_ui.components.empty_state import placeholder_page


def page() -> rx.Component:
    return placeholder_page(
        title="Workflows",
        summary="Chain agents, tools and human approvals into repeatable processes.",
        icon="workflow",
        headline="The workflow builder is not here yet",
        detail=(
            "It arrives with workflows. "
            "Then you can draw a workflow as a graph, validate it, and schedule or start runs."
        ),
    )
