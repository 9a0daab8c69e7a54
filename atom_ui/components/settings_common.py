"""Pieces shared by the settings tabs: labelled fields, role selects, tables, the confirmation dialog."""

from __future__ import annotations

from typing import Any

import reflex as rx

from atom_ui.states.settings import SettingsState as S


def field(
    label: str,
    name: str,
    field_id: str,
    error: rx.Var[str],
    *,
    hint: str | rx.Var[str] = "",
    **input_props: Any,
) -> rx.Component:
    """A labelled input with its error (or hint) under it; tests find it by its label."""
    message_id = f"{field_id}-message"
    input_props.setdefault("auto_complete", "off")
    return rx.vstack(
        rx.el.label(rx.text(label, size="2", weight="medium"), html_for=field_id),
        rx.input(
            id=field_id,
            name=name,
            width="100%",
            color_scheme=rx.cond(error != "", "red", "gray"),
            aria_invalid=rx.cond(error != "", "true", "false"),
            aria_describedby=message_id,
            **input_props,
        ),
        rx.cond(
            error != "",
            rx.text(error, size="1", color_scheme="red", role="alert", id=message_id),
            rx.text(hint, size="1", color_scheme="gray", id=message_id),
        ),
        spacing="1",
        width="100%",
    )


def role_select(name: str, field_id: str, label: str, *, default: str = "member") -> rx.Component:
    """A select of the roles the caller may grant, for a form."""
    return rx.vstack(
        rx.el.label(rx.text(label, size="2", weight="medium"), html_for=field_id),
        rx.select.root(
            rx.select.trigger(id=field_id, aria_label=label, min_width="8rem"),
            rx.select.content(rx.foreach(S.roles_to_grant, lambda r: rx.select.item(r, value=r))),
            name=name,
            default_value=default,
        ),
        rx.text("", size="1"),  # keeps the row aligned with fields that show a message
        spacing="1",
    )


def header_row(*titles: str) -> rx.Component:
    return rx.table.header(rx.table.row(*[rx.table.column_header_cell(t, white_space="nowrap") for t in titles]))


def error_callout(message: rx.Var[str]) -> rx.Component:
    return rx.cond(
        message != "",
        rx.callout(message, icon="circle_alert", color_scheme="red", role="alert", width="100%"),
    )


def scroll_table(*children: rx.Component, label: str) -> rx.Component:
    """A table that scrolls sideways on a narrow window rather than squeezing its columns."""
    return rx.box(
        rx.table.root(*children, variant="surface", size="2", width="100%", aria_label=label),
        overflow_x="auto",
        width="100%",
    )


def section(title: str, summary: str, *children: rx.Component) -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading(title, size="4", as_="h2"),
            rx.text(summary, size="2", color_scheme="gray"),
            *children,
            spacing="3",
            width="100%",
        ),
        width="100%",
    )


def confirm_dialog() -> rx.Component:
    """One dialog for every destructive action; the state knows which one it confirms."""
    return rx.alert_dialog.root(
        rx.alert_dialog.content(
            rx.alert_dialog.title(S.confirm_title),
            rx.alert_dialog.description(S.confirm_body),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button("Cancel", variant="soft", color_scheme="gray")),
                rx.alert_dialog.action(
                    rx.button(
                        rx.match(
                            S.confirm_kind,
                            ("delete_provider", "Delete provider"),
                            ("revoke_key", "Revoke key"),
                            ("remove_member", "Remove member"),
                            "Confirm",
                        ),
                        color_scheme="red",
                        on_click=S.confirm,
                    )
                ),
                justify="end",
                spacing="3",
                margin_top="1rem",
            ),
            max_width="28rem",
        ),
        open=S.confirm_open,
        on_open_change=S.set_confirm_open,
    )
