"""The frame of a dashboard page: its heading, with the page's main actions beside
it, and the marker that reloads the page when the user switches workspace."""

from __future__ import annotations

from typing import Any

import reflex as rx

from atom_ui.state import AuthState


def page_header(title: str, summary: str, *actions: rx.Component) -> rx.Component:
    """The page's title and one line on what it is for; actions (e.g. "Create agent")
    sit at its right on a wide window and wrap under it on a narrow one."""
    heading = rx.vstack(
        rx.heading(title, size="7", as_="h1"),
        rx.text(summary, color_scheme="gray", size="3"),
        spacing="1",
        width="100%",
    )
    if not actions:
        return heading
    return rx.flex(
        heading,
        *actions,
        justify="between",
        align="end",
        spacing="3",
        wrap=rx.breakpoints(initial="wrap", sm="nowrap"),
        width="100%",
    )


def tenant_watch(on_switch: Any) -> rx.Component:
    """Runs `on_switch` when the page mounts and again whenever the workspace changes.

    The outer box's key is the workspace, so a switch remounts the inner box, whose
    on_mount runs again. A key on the box that owns on_mount would not do: Reflex puts
    the key inside the memoized component that owns the effect, which never remounts.
    """
    return rx.box(rx.box(on_mount=on_switch), key=AuthState.tenant_id, display="none")


def page_frame(*children: rx.Component, on_tenant_switch: Any, spacing: str = "5", **props: Any) -> rx.Component:
    """A page's content, one block under the other, reloaded on a workspace switch."""
    return rx.vstack(tenant_watch(on_tenant_switch), *children, spacing=spacing, width="100%", **props)
