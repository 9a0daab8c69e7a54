"""/agents: the workspace's agents; create, edit (inline validation errors) and delete (with confirmation)."""

from __future__ import annotations

import reflex as rx

from atom_ui.components.agent_form import agent_form_dialog
from atom_ui.components.agent_table import CAN_WRITE, agents_empty, agents_table, delete_confirm
from atom_ui.components.empty_state import page_header
from atom_ui.state import AuthState
from atom_ui.states.agents import AgentsState as S

ON_LOAD = [S.load]


def _tenant_watch() -> rx.Component:
    # The outer box's key is the tenant, so switching workspace remounts the inner box, whose
    # on_mount reloads the page (a key on the inner box itself would not re-run its on_mount:
    # Reflex puts the key inside the memoized component that owns the effect).
    return rx.box(
        rx.box(on_mount=S.reload_if_tenant_changed),
        key=AuthState.tenant_id,
        display="none",
    )


def _body() -> rx.Component:
    return rx.cond(
        S.error != "",
        rx.vstack(
            rx.callout(S.error, icon="circle_alert", color_scheme="red", role="alert", width="100%"),
            rx.button("Try again", variant="soft", on_click=S.load),
            width="100%",
        ),
        rx.cond(
            ~S.loaded,
            rx.center(rx.spinner(size="3"), padding="3rem", width="100%"),
            rx.cond(S.empty, agents_empty(), agents_table()),
        ),
    )


def page() -> rx.Component:
    return rx.vstack(
        _tenant_watch(),
        rx.flex(
            page_header("Agents", "The agents of this workspace: their instructions, tools, models and memory."),
            rx.cond(
                CAN_WRITE,
                rx.button(rx.icon("plus", size=16), "Create agent", on_click=S.open_create, flex_shrink="0"),
            ),
            justify="between",
            align="end",
            spacing="3",
            wrap=rx.breakpoints(initial="wrap", sm="nowrap"),
            width="100%",
        ),
        _body(),
        agent_form_dialog(),
        delete_confirm(),
        spacing="5",
        width="100%",
    )
