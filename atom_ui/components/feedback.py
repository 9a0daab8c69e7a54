"""How a page says that it is loading or that something failed."""

from __future__ import annotations

from typing import Any

import reflex as rx


def alert(message: rx.Var[str] | str, **props: Any) -> rx.Component:
    """A red callout announced to screen readers (a load or form error)."""
    return rx.callout(message, icon="circle_alert", color_scheme="red", role="alert", width="100%", **props)


def error_callout(message: rx.Var[str]) -> rx.Component:
    """`alert`, only while there is a message."""
    return rx.cond(message != "", alert(message))


def spinner_block() -> rx.Component:
    """The large spinner that stands for content being loaded."""
    return rx.center(rx.spinner(size="3"), padding="3rem", width="100%")


def loaded_body(
    content: rx.Component,
    *,
    error: rx.Var[str],
    waiting: rx.Var[bool],
    on_retry: Any = None,
) -> rx.Component:
    """A page's main block: its load error (with "Try again" when `on_retry` is given),
    else a spinner while `waiting`, else the content."""
    failed = alert(error)
    if on_retry is not None:
        failed = rx.vstack(failed, rx.button("Try again", variant="soft", on_click=on_retry), width="100%")
    return rx.cond(error != "", failed, rx.cond(waiting, spinner_block(), content))
