"""/playground: a placeholder until the agent runtime lands."""

from __future__ import annotations

import reflex as rx

from atom_ui.components.empty_state import placeholder_page


def page() -> rx.Component:
    return placeholder_page(
        title="Playground",
        summary="Talk to an agent and watch each step: model calls, tool calls and memory.",
        icon="message_square",
        headline="Nothing to talk to yet",
        detail=(
            "The playground opens once the workspace has an agent. "
            "It will also work offline, with the built-in offline model."
        ),
    )
