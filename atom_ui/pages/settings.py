"""/settings: the signed-in account; workspace settings come later."""

from __future__ import annotations

import reflex as rx

from atom_ui.components.empty_state import empty_state, page_header
from atom_ui.state import AuthState


def _account() -> rx.Component:
    return rx.card(
        rx.data_list.root(
            rx.data_list.item(rx.data_list.label("Email"), rx.data_list.value(AuthState.user_email)),
            rx.data_list.item(rx.data_list.label("Workspace"), rx.data_list.value(AuthState.tenant_name)),
            rx.data_list.item(rx.data_list.label("Role"), rx.data_list.value(rx.badge(AuthState.role, variant="soft"))),
        ),
        width="100%",
    )


def page() -> rx.Component:
    return rx.vstack(
        page_header("Settings", "Your account, and later the workspace's members, API keys and model providers."),
        _account(),
        empty_state(
            "settings",
            "Workspace settings are not here yet",
            "Members, API keys and model provider keys will be managed here.",
        ),
        spacing="5",
        width="100%",
    )
