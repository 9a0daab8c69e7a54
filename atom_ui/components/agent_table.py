"""The agents list, its empty state and the delete confirmation."""

from __future__ import annotations

import reflex as rx

from atom_ui.components.agent_badges import model_badge, tool_badges
from atom_ui.components.dialogs import confirm_dialog
from atom_ui.components.empty_state import empty_state
from atom_ui.components.pager import more_button
from atom_ui.components.table import data_table
from atom_ui.state import AuthState
from atom_ui.states.agents import AgentRow, AgentsState

S = AgentsState
CAN_WRITE = AuthState.role != "viewer"


def _actions(row: AgentRow) -> rx.Component:
    return rx.hstack(
        rx.link(
            rx.button(rx.icon("message_square", size=14), "Chat", variant="soft", size="1"),
            href="/playground?agent=" + row.slug,
            aria_label="Chat with " + row.name,
        ),
        rx.cond(
            CAN_WRITE,
            rx.fragment(
                rx.icon_button(
                    rx.icon("pencil", size=14),
                    variant="soft",
                    color_scheme="gray",
                    size="1",
                    aria_label="Edit " + row.name,
                    title="Edit",
                    on_click=S.open_edit(row.id),
                ),
                rx.icon_button(
                    rx.icon("trash_2", size=14),
                    variant="soft",
                    color_scheme="red",
                    size="1",
                    aria_label="Delete " + row.name,
                    title="Delete",
                    on_click=S.ask_delete(row.id, row.name),
                ),
            ),
        ),
        spacing="2",
        justify="end",
        align="center",
    )


def _row(row: AgentRow) -> rx.Component:
    return rx.table.row(
        rx.table.row_header_cell(
            rx.vstack(
                rx.hstack(
                    rx.text(row.name, weight="medium"),
                    rx.cond(row.memory_enabled, rx.tooltip(rx.icon("brain", size=14), content="Memory on")),
                    align="center",
                    spacing="2",
                ),
                rx.cond(row.description != "", rx.text(row.description, size="1", color_scheme="gray")),
                spacing="1",
                max_width="22rem",
            ),
        ),
        rx.table.cell(rx.code(row.slug, variant="ghost", white_space="nowrap")),
        rx.table.cell(model_badge(row.model_label, row.offline)),
        rx.table.cell(tool_badges(row.tools, empty="—")),
        rx.table.cell(rx.badge(row.maturity, variant="surface", color_scheme="gray")),
        rx.table.cell(_actions(row)),
        data_testid="agent-row-" + row.slug,
        background=rx.cond(row.slug == S.highlight, rx.color("accent", 3), "transparent"),
        align="center",
    )


def agents_table() -> rx.Component:
    return rx.vstack(
        data_table(("Name", "Slug", "Model", "Tools", "Maturity", "Actions"), S.rows, _row, label="Agents"),
        more_button("Load more", cursor=S.next_cursor, on_click=S.load_more, loading=S.loading),
        spacing="3",
        width="100%",
        align="center",
    )


def agents_empty() -> rx.Component:
    """What to do when the workspace has no agent yet."""
    return empty_state(
        "bot",
        "No agents yet",
        "Install a ready-made agent from the Marketplace, or create one from scratch.",
        rx.hstack(
            rx.link(rx.button(rx.icon("store", size=16), "Browse the Marketplace"), href="/marketplace"),
            rx.cond(
                CAN_WRITE,
                rx.button(rx.icon("plus", size=16), "Create agent", variant="soft", on_click=S.open_create),
            ),
            spacing="3",
            wrap="wrap",
            justify="center",
        ),
        test_id="agents-empty",
    )


def delete_confirm() -> rx.Component:
    return confirm_dialog(
        "Delete " + S.delete_name + "?",
        "The agent and its settings are removed from this workspace. This cannot be undone.",
        confirm_label="Delete agent",
        on_confirm=S.confirm_delete,
        loading=S.deleting,
        open=S.delete_open,
        on_open_change=S.set_delete_open,
    )
