"""/runs: a placeholder until the agent runtime lands."""

from __future__ import annotations

import reflex as rx

from atom_ui.components.empty_state import placeholder_page


def page() -> rx.Component:
    return placeholder_page(
        title="Runs",
        summary="Every agent and workflow run, with its status, steps and trace.",
        icon="list_checks",
        headline="No runs yet",
        detail="Runs appear here as soon as agents or workflows start running in this workspace.",
    )
