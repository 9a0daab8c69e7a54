"""Dialog pieces: the buttons row at the bottom of a dialog, and the confirmation
asked before a destructive or lasting action."""

from __future__ import annotations

from typing import Any

import reflex as rx


def dialog_buttons(*buttons: rx.Component, cancel_label: str = "Cancel") -> rx.Component:
    """Cancel (closes the dialog), then the dialog's own buttons, at the right."""
    return rx.hstack(
        rx.dialog.close(rx.button(cancel_label, type="button", variant="soft", color_scheme="gray")),
        *buttons,
        justify="end",
        spacing="3",
        width="100%",
    )


def confirm_dialog(
    title: rx.Var[str] | str,
    description: rx.Var[str] | str,
    *,
    confirm_label: rx.Var[str] | str,
    on_confirm: Any,
    open: rx.Var[bool] | None = None,
    on_open_change: Any = None,
    trigger: rx.Component | None = None,
    loading: rx.Var[bool] | None = None,
    cancel_label: str = "Cancel",
    destructive: bool = True,
    close_on_confirm: bool = False,
    body: rx.Component | None = None,
    max_width: str = "28rem",
) -> rx.Component:
    """An alert dialog: title, what will happen, an optional `body` (e.g. a field), then
    Cancel and the confirm button (red when `destructive`).

    Opened by `trigger`, or controlled through `open` / `on_open_change`. With
    `close_on_confirm` the dialog closes as soon as the user confirms; otherwise it
    stays open (with `loading` on the button) until the state closes it, e.g. to show
    an error next to a field.
    """
    button_props: dict[str, Any] = {"on_click": on_confirm}
    if destructive:
        button_props["color_scheme"] = "red"
    if loading is not None:
        button_props["loading"] = loading
    confirm = rx.button(confirm_label, **button_props)
    root_props: dict[str, Any] = {}
    if open is not None:
        root_props |= {"open": open, "on_open_change": on_open_change}
    return rx.alert_dialog.root(
        *([rx.alert_dialog.trigger(trigger)] if trigger is not None else []),
        rx.alert_dialog.content(
            rx.alert_dialog.title(title),
            rx.alert_dialog.description(description, size="2"),
            *([body] if body is not None else []),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button(cancel_label, variant="soft", color_scheme="gray")),
                rx.alert_dialog.action(confirm) if close_on_confirm else confirm,
                justify="end",
                spacing="3",
                margin_top="1rem",
            ),
            max_width=max_width,
        ),
        **root_props,
    )


def dialog_header(
    title: rx.Var[str] | str, *extras: rx.Component, close_label: str = "Close", **props: Any
) -> rx.Component:
    """A dialog's title, what goes beside it (badges), and the close button at the right."""
    return rx.hstack(
        rx.dialog.title(title, margin="0"),
        *extras,
        rx.spacer(),
        rx.dialog.close(rx.icon_button(rx.icon("x"), variant="ghost", aria_label=close_label)),
        align="center",
        width="100%",
        **props,
    )
