"""/agents: the workspace's agents; create, edit (inline validation errors) and delete (with confirmation)."""

from __future__ import annotations

import reflex as rx

from atom_ui.components.agent_form import agent_form_dialog
from atom_ui.components.agent_table import CAN_WRITE, agents_empty, agents_table, delete_confirm
from atom_ui.components.feedback import loaded_body
from atom_ui.components.page import page_frame, page_header
from atom_ui.states.agents import AgentsState as S

ON_LOAD = [S.load]


def page() -> rx.Component:
    return page_frame(
        page_header(
            "Agents",
            "The agents of this workspace: their instructions, tools, models and memory.",
            rx.cond(
                CAN_WRITE,
                rx.button(rx.icon("plus", size=16), "Create agent", on_click=S.open_create, flex_shrink="0"),
            ),
        ),
        loaded_body(
            rx.cond(S.empty, agents_empty(), agents_table()),
            error=S.error,
            waiting=~S.loaded,
            on_retry=S.load,
        ),
        agent_form_dialog(),
        delete_confirm(),
        on_tenant_switch=S.reload_if_tenant_changed,
    )
