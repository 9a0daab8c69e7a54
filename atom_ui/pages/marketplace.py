"""/marketplace: a placeholder until the agent runtime lands."""

from __future__ import annotations

import reflex as rx

from atom_ui.components.empty_state import placeholder_page


def page() -> rx.Component:
    return placeholder_page(
        title="Marketplace",
        summary="Ready-made agents you can install into your workspace.",
        icon="store",
        headline="The agent catalog is not here yet",
        detail=(
            "It arrives with the agent runtime. "
            "Then you can browse agents by task, read what tools they use, and install one with a click."
        ),
    )
