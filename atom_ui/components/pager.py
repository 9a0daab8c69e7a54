"""Paging controls: Previous / page / Next, and a "Load more" button."""

from __future__ import annotations

from typing import Any

import reflex as rx


def pager(
    *,
    visible: rx.Var[bool],
    page_text: rx.Component,
    has_previous: rx.Var[bool],
    has_next: rx.Var[bool],
    on_previous: Any,
    on_next: Any,
    previous_label: str = "Previous",
    next_label: str = "Next",
) -> rx.Component:
    return rx.cond(
        visible,
        rx.hstack(
            rx.button(
                rx.icon("chevron_left", size=16),
                previous_label,
                variant="soft",
                disabled=~has_previous,
                on_click=on_previous,
            ),
            page_text,
            rx.button(
                next_label,
                rx.icon("chevron_right", size=16),
                variant="soft",
                disabled=~has_next,
                on_click=on_next,
            ),
            align="center",
            spacing="3",
        ),
    )


def cursor_pager(state: Any) -> rx.Component:
    """Previous / Next for a list state with `page`, `next_cursor`, `previous_page` and
    `next_page` (see `atom_ui.states.paging.CursorPages`); hidden while there is one page."""
    return pager(
        visible=(state.page > 1) | (state.next_cursor != ""),
        page_text=rx.text("Page ", state.page.to_string(), size="2", color_scheme="gray"),
        has_previous=state.page > 1,
        has_next=state.next_cursor != "",
        on_previous=state.previous_page,
        on_next=state.next_page,
    )


def more_button(label: str, *, cursor: rx.Var[str], on_click: Any, **props: Any) -> rx.Component:
    """A button that appends the next page, shown while the service says there is one."""
    return rx.cond(cursor != "", rx.button(label, variant="soft", on_click=on_click, **props))
