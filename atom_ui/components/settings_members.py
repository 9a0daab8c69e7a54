"""Settings → Members: who belongs to the workspace, with which role."""

from __future__ import annotations

import reflex as rx

from atom_ui.components.feedback import error_callout
from atom_ui.components.settings_common import field, role_form, role_select, section
from atom_ui.components.table import data_table
from atom_ui.states.settings import MemberRow
from atom_ui.states.settings import SettingsState as S


def _add_form() -> rx.Component:
    return role_form(
        rx.box(
            field(
                "Member email",
                "email",
                "member-email",
                S.member_errors.get("email", ""),
                hint="They need an ATOM account already (they sign up first).",
                type="email",
                placeholder="colleague@example.com",
            ),
            flex="1",
            min_width="14rem",
        ),
        role_select("role", "member-role", "Member role"),
        rx.button(rx.icon("user_plus", size=16), "Add member", type="submit"),
        error=S.member_form_error,
        on_submit=S.add_member,
    )


def _role_cell(row: MemberRow) -> rx.Component:
    return rx.cond(
        row.can_edit,
        rx.select.root(
            rx.select.trigger(aria_label="Role of " + row.email, min_width="7rem"),
            rx.select.content(rx.foreach(S.roles_to_grant, lambda r: rx.select.item(r, value=r))),
            value=row.role,
            on_change=lambda role: S.change_role(row.user_id, role),
            size="1",
        ),
        rx.badge(row.role, variant="soft"),
    )


def _row(row: MemberRow) -> rx.Component:
    return rx.table.row(
        rx.table.row_header_cell(
            rx.hstack(
                rx.text(row.email, weight="medium"),
                rx.cond(row.is_me, rx.badge("you", color_scheme="gray", variant="outline")),
                align="center",
                spacing="2",
            )
        ),
        rx.table.cell(_role_cell(row)),
        rx.table.cell(rx.text(row.joined, size="1", white_space="nowrap")),
        rx.table.cell(
            rx.cond(
                row.can_edit,
                rx.button(
                    "Remove",
                    size="1",
                    variant="soft",
                    color_scheme="red",
                    aria_label="Remove " + row.email,
                    on_click=S.ask("remove_member", row.user_id, row.email),
                ),
            )
        ),
        align="center",
        data_testid="member-row",
    )


def members_tab() -> rx.Component:
    return section(
        "Members",
        "Roles: owner (everything), admin (members, providers, tools), member (agents, workflows, own keys), "
        "viewer (read only).",
        rx.cond(S.can_manage_members, _add_form()),
        error_callout(S.members_error),
        data_table(("Email", "Role", "Joined", ""), S.members, _row, label="Members"),
    )
