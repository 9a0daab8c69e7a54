"""Form pieces: a labelled input with its inline error, and a form-level notice
(a form-level error is `feedback.error_callout`)."""

from __future__ import annotations

import reflex as rx


def text_field(
    label: str,
    name: str,
    error: rx.Var[str],
    *,
    type: str = "text",
    auto_complete: str = "off",
    hint: str = "",
) -> rx.Component:
    """An input that a test or screen reader finds by its label, with its error below it."""
    return rx.vstack(
        rx.el.label(rx.text(label, size="2", weight="medium"), html_for=name),
        rx.input(
            id=name,
            name=name,
            type=type,
            auto_complete=auto_complete,
            required=True,
            size="3",
            width="100%",
            color_scheme=rx.cond(error != "", "red", "gray"),
            aria_invalid=rx.cond(error != "", "true", "false"),
            aria_describedby=f"{name}-message",
        ),
        rx.cond(
            error != "",
            rx.text(error, size="2", color_scheme="red", role="alert", id=f"{name}-message"),
            rx.text(hint, size="1", color_scheme="gray", id=f"{name}-message") if hint else rx.fragment(),
        ),
        spacing="1",
        width="100%",
    )


def form_notice(message: rx.Var[str]) -> rx.Component:
    return rx.cond(
        message != "",
        rx.callout(message, icon="info", color_scheme="blue", width="100%"),
    )
