"""A read-only workflow graph: React Flow (`@xyflow/react`) wrapped as Reflex components.

Positions and colours come from Python (`dag_layout.graph`); the browser only
draws. The stylesheet React Flow needs is imported by the component itself,
so a page that shows a graph needs nothing else.
"""

from __future__ import annotations

from typing import Any

import reflex as rx
from reflex.utils.imports import ImportDict

from atom_ui.components.dag_layout import stylesheet

# Pinned: every component below must name the same version, or npm gets two.
XYFLOW = "@xyflow/react@12.10.2"


def _node_id_spec(event: rx.Var, node: rx.Var) -> tuple[rx.Var[str]]:
    """onNodeClick(event, node) -> the node's id."""
    return (rx.Var(_js_expr=f"{node}?.id", _var_type=str),)


class _XYFlow(rx.Component):
    library = XYFLOW

    def add_imports(self) -> ImportDict:
        # An empty library name renders a side-effect import: import "@xyflow/react/dist/style.css"
        return {"": "@xyflow/react/dist/style.css"}


class ReactFlow(_XYFlow):
    """`<ReactFlow>`; its parent must have a height."""

    tag = "ReactFlow"

    nodes: rx.Var[list[dict[str, Any]]]
    edges: rx.Var[list[dict[str, Any]]]
    fit_view: rx.Var[bool]
    fit_view_options: rx.Var[dict[str, Any]]
    nodes_draggable: rx.Var[bool]
    nodes_connectable: rx.Var[bool]
    nodes_focusable: rx.Var[bool]
    edges_focusable: rx.Var[bool]
    elements_selectable: rx.Var[bool]
    zoom_on_scroll: rx.Var[bool]
    prevent_scrolling: rx.Var[bool]
    min_zoom: rx.Var[float]
    max_zoom: rx.Var[float]
    color_mode: rx.Var[str]
    pro_options: rx.Var[dict[str, Any]]

    on_node_click: rx.EventHandler[_node_id_spec]


class Background(_XYFlow):
    tag = "Background"

    gap: rx.Var[int]
    size: rx.Var[float]


class Controls(_XYFlow):
    tag = "Controls"

    show_interactive: rx.Var[bool]


def dag_graph(
    nodes: rx.Var[list[dict[str, Any]]],
    edges: rx.Var[list[dict[str, Any]]],
    *,
    key: rx.Var[str] | str = "",
    height: str = "22rem",
    on_node_click: Any = None,
    label: str = "Workflow graph",
    test_id: str = "dag-graph",
) -> rx.Component:
    """The graph in a framed box, with the node stylesheet. A change of `key`
    remounts it, which re-fits the view."""
    extra = {"on_node_click": on_node_click} if on_node_click is not None else {}
    return rx.box(
        rx.el.style(stylesheet()),
        ReactFlow.create(
            Background.create(gap=16, size=1),
            Controls.create(show_interactive=False),
            nodes=nodes,
            edges=edges,
            fit_view=True,
            fit_view_options={"padding": 0.2, "maxZoom": 1.2},
            nodes_draggable=False,
            nodes_connectable=False,
            edges_focusable=False,
            elements_selectable=on_node_click is not None,
            zoom_on_scroll=False,
            prevent_scrolling=False,
            min_zoom=0.2,
            max_zoom=2.0,
            color_mode=rx.color_mode_cond(light="light", dark="dark"),
            key=key,
            **extra,
        ),
        role="group",
        aria_label=label,
        data_testid=test_id,
        width="100%",
        height=height,
        border=f"1px solid {rx.color('gray', 5)}",
        border_radius="var(--radius-3)",
        overflow="hidden",
        background=rx.color("gray", 1),
    )
