"""Analytics building blocks: a KPI card and a card framing one Plotly chart."""

from __future__ import annotations

import reflex as rx

# The basic Plotly bundle (bar, scatter, pie) is a fraction of the full one: faster to a first chart.
PLOT_CONFIG = {"displayModeBar": False, "responsive": True, "displaylogo": False}


def kpi_card(key: rx.Var[str], label: rx.Var[str], value: rx.Var[str], detail: rx.Var[str]) -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.text(label, size="2", color_scheme="gray", weight="medium"),
            rx.text(value, size="6", weight="bold", data_testid="kpi-" + key, trim="both"),
            rx.text(detail, size="1", color_scheme="gray"),
            spacing="1",
        ),
        role="group",
        aria_label=label,
        width="100%",
    )


def chart_card(
    title: str,
    figure: rx.Var,
    *,
    testid: str,
    has_data: rx.Var[bool],
    empty_hint: str,
    description: str | rx.Var[str] = "",
) -> rx.Component:
    """A titled card with its chart, or a one-line hint when there is nothing to plot."""
    return rx.card(
        rx.vstack(
            rx.heading(title, size="3", as_="h2"),
            rx.text(description, size="1", color_scheme="gray")
            if isinstance(description, rx.Var) or description
            else rx.fragment(),
            rx.cond(
                has_data,
                rx.box(
                    rx.plotly.basic(data=figure, config=PLOT_CONFIG, width="100%", height="300px"),
                    width="100%",
                    min_height="300px",
                ),
                rx.center(
                    rx.text(empty_hint, size="2", color_scheme="gray", align="center"),
                    min_height="8rem",
                    width="100%",
                ),
            ),
            spacing="2",
            width="100%",
        ),
        data_testid=testid,
        width="100%",
        min_width="0",
    )
