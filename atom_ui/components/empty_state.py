"""The content of a page whose feature has not arrived yet."""

from __future__ import annotations

import reflex as rx


def page_header(title: str, summary: str) -> rx.Component:
    return rx.vstack(
        rx.heading(title, size="7", as_="h1"),
        rx.text(summary, color_scheme="gray", size="3"),
        spacing="1",
        width="100%",
    )


def empty_state(icon: str, headline: str, detail: str) -> rx.Component:
    """A dashed box that says what will appear here and what to do meanwhile."""
    return rx.center(
        rx.vstack(
            rx.icon(icon, size=40, color=rx.color("accent", 9)),
            rx.heading(headline, size="4", as_="h2", align="center"),
            rx.text(detail, color_scheme="gray", align="center", max_width="32rem"),
            align="center",
            spacing="3",
        ),
        border=f"1px dashed {rx.color('gray', 7)}",
        border_radius="var(--radius-4)",
        padding="3rem 1.5rem",
        width="100%",
    )


def placeholder_page(*, title: str, summary: str, icon: str, headline: str, detail: str) -> rx.Component:
    return rx.vstack(
        page_header(title, summary),
        empty_state(icon, headline, detail),
        spacing="5",
        width="100%",
    )
