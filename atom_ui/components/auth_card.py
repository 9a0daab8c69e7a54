"""The centred card that frames the login and signup forms."""

from __future__ import annotations

import reflex as rx


def auth_card(title: str, subtitle: str, *children: rx.Component) -> rx.Component:
    return rx.center(
        rx.vstack(
            rx.hstack(
                rx.icon("atom", size=32, color=rx.color("accent", 9)),
                rx.heading("ATOM", size="7", weight="bold"),
                align="center",
                spacing="2",
            ),
            rx.card(
                rx.vstack(
                    rx.heading(title, size="6", as_="h1"),
                    rx.text(subtitle, color_scheme="gray", size="2"),
                    *children,
                    spacing="4",
                    width="100%",
                ),
                size="4",
                width="100%",
            ),
            align="center",
            spacing="5",
            width="100%",
            max_width="26rem",
        ),
        rx.color_mode.button(position="top-right", aria_label="Toggle light and dark mode"),
        min_height="100vh",
        padding="1rem",
        background=rx.color("gray", 2),
    )
