"""What a page shows when it has nothing to list yet, or its feature has not arrived yet."""

from __future__ import annotations

import reflex as rx

from atom_ui.components.page import page_header


def empty_state(
    icon: str,
    headline: str | rx.Var[str],
    detail: str | rx.Var[str],
    *actions: rx.Component,
    test_id: str = "",
    detail_width: str = "32rem",
) -> rx.Component:
    """A dashed box that says what will appear here and what to do meanwhile (`actions`:
    the buttons or links that do it)."""
    return rx.center(
        rx.vstack(
            rx.icon(icon, size=40, color=rx.color("accent", 9)),
            rx.heading(headline, size="4", as_="h2", align="center"),
            rx.text(detail, color_scheme="gray", align="center", max_width=detail_width),
            *actions,
            align="center",
            spacing="3",
        ),
        border=f"1px dashed {rx.color('gray', 7)}",
        border_radius="var(--radius-4)",
        padding="3rem 1.5rem",
        width="100%",
        **({"data_testid": test_id} if test_id else {}),
    )


def placeholder_page(*, title: str, summary: str, icon: str, headline: str, detail: str) -> rx.Component:
    return rx.vstack(
        page_header(title, summary),
        empty_state(icon, headline, detail),
        spacing="5",
        width="100%",
    )
