"""/agents: a placeholder until the agent runtime lands."""

from __future__ import annotations

import reflex as rx

from atom_ui.components.empty_state import placeholder_page


def page() -> rx.Component:
    return placeholder_page(
        title="Agents",
        summary="The agents of this workspace: their instructions, tools, models and memory.",
        icon="bot",
        headline="Agents arrive with the agent runtime",
        detail="Once it lands you can create an agent here or install one from the Marketplace.",
    )
