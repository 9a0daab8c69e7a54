"""Data tables: a header row and a table that scrolls sideways on a narrow window."""

from __future__ import annotations

from collections.abc import Callable

import reflex as rx


def header_row(*titles: str | rx.Component) -> rx.Component:
    return rx.table.header(rx.table.row(*[rx.table.column_header_cell(t, white_space="nowrap") for t in titles]))


def scroll_table(*children: rx.Component, label: str) -> rx.Component:
    """A table that scrolls sideways on a narrow window rather than squeezing its columns."""
    return rx.box(
        rx.table.root(*children, variant="surface", size="2", width="100%", aria_label=label),
        overflow_x="auto",
        width="100%",
    )


def data_table(
    columns: tuple[str | rx.Component, ...],
    rows: rx.Var,
    render_row: Callable[[rx.Var], rx.Component],
    *,
    label: str,
) -> rx.Component:
    """One row per item of `rows` under the column titles; `label` names the table for screen readers."""
    return scroll_table(header_row(*columns), rx.table.body(rx.foreach(rows, render_row)), label=label)
