"""Pieces shared by the settings tabs: labelled fields, role selects, one-line forms,
sections and the confirmation dialog."""

from __future__ import annotations

from typing import Any

import reflex as rx

from atom_ui.components.dialogs import confirm_dialog
from atom_ui.components.feedback import error_callout
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


def role_form(
    field_box: rx.Component,
    role: rx.Component,
    submit: rx.Component,
    *,
    error: rx.Var[str],
    on_submit: Any,
) -> rx.Component:
    """A one-line form: a field, the role to give, the submit button, and the form's error under them."""
    return rx.form(
        rx.vstack(
            rx.flex(
                field_box,
                role,
                rx.box(submit, padding_top="1.5rem"),
                spacing="3",
                align="start",
                wrap="wrap",
                width="100%",
            ),
            error_callout(error),
            spacing="2",
            width="100%",
        ),
        on_submit=on_submit,
        reset_on_submit=True,
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


def settings_confirm() -> rx.Component:
    """One dialog for every destructive action; the state knows which one it confirms."""
    return confirm_dialog(
        S.confirm_title,
        S.confirm_body,
        confirm_label=rx.match(
            S.confirm_kind,
            ("delete_provider", "Delete provider"),
            ("revoke_key", "Revoke key"),
            ("remove_member", "Remove member"),
            "Confirm",
        ),
        on_confirm=S.confirm,
        close_on_confirm=True,
        open=S.confirm_open,
        on_open_change=S.set_confirm_open,
    )
