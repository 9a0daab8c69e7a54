"""The authenticated shell: sidebar navigation, header and page frame.

At 768px and wider the sidebar is always visible; below that it folds into a
menu button in the header, and the user's email moves into that menu.
"""

from __future__ import annotations

from dataclasses import dataclass

import reflex as rx

from atom_ui.state import AuthState

SIDEBAR_WIDTH = "15rem"
WIDE = rx.breakpoints(initial="none", sm="flex")
NARROW = rx.breakpoints(initial="flex", sm="none")


@dataclass(frozen=True)
class NavItem:
    label: str
    route: str
    icon: str


NAV_ITEMS = (
    NavItem("Marketplace", "/marketplace", "store"),
    NavItem("Agents", "/agents", "bot"),
    NavItem("Playground", "/playground", "message_square"),
    NavItem("Workflows", "/workflows", "workflow"),
    NavItem("Runs", "/runs", "list_checks"),
    NavItem("Analytics", "/analytics", "chart_line"),
    NavItem("Governance", "/governance", "shield_check"),
    NavItem("Settings", "/settings", "settings"),
)


def brand(*, compact: bool = False) -> rx.Component:
    logo = rx.icon("atom", size=24, color=rx.color("accent", 9))
    return rx.link(
        logo if compact else rx.hstack(logo, rx.heading("ATOM", size="5", weight="bold"), align="center", spacing="2"),
        href="/",
        underline="none",
        color="inherit",
        aria_label="ATOM home",
    )


def _nav_link(item: NavItem) -> rx.Component:
    active = rx.State.router.url.path.startswith(item.route)
    return rx.link(
        rx.hstack(rx.icon(item.icon, size=18), rx.text(item.label, size="3"), align="center", spacing="3"),
        href=item.route,
        underline="none",
        aria_current=rx.cond(active, "page", "false"),
        color=rx.cond(active, rx.color("accent", 11), rx.color("gray", 12)),
        background=rx.cond(active, rx.color("accent", 3), "transparent"),
        border_radius="var(--radius-3)",
        padding="0.5rem 0.75rem",
        width="100%",
        _hover={"background": rx.color("accent", 4)},
    )


def sidebar() -> rx.Component:
    return rx.el.nav(
        rx.vstack(
            rx.box(brand(), padding="0.25rem 0.75rem 1rem"),
            *[_nav_link(item) for item in NAV_ITEMS],
            spacing="1",
            width="100%",
        ),
        aria_label="Main",
        display=WIDE,
        flex_shrink="0",
        width=SIDEBAR_WIDTH,
        height="100vh",
        position="sticky",
        top="0",
        padding="1rem 0.75rem",
        overflow_y="auto",
        border_right=f"1px solid {rx.color('gray', 5)}",
        background=rx.color("gray", 2),
    )


def mobile_menu() -> rx.Component:
    return rx.menu.root(
        rx.menu.trigger(rx.icon_button(rx.icon("menu"), variant="ghost", aria_label="Open navigation")),
        rx.menu.content(
            rx.hstack(
                rx.text(AuthState.user_email, size="2", trim="both"),
                rx.badge(AuthState.role, variant="soft"),
                padding="0.5rem 0.75rem",
                spacing="2",
            ),
            rx.menu.separator(),
            *[
                rx.menu.item(rx.icon(item.icon, size=16), item.label, on_click=rx.redirect(item.route))
                for item in NAV_ITEMS
            ],
        ),
    )


def tenant_switcher() -> rx.Component:
    """A select for users in several tenants; otherwise just the tenant's name."""
    return rx.cond(
        AuthState.tenants.length() > 1,
        rx.select.root(
            rx.select.trigger(aria_label="Switch workspace", max_width="14rem"),
            rx.select.content(
                rx.foreach(
                    AuthState.tenants,
                    lambda t: rx.select.item(t["name"], value=t["tenant_id"]),
                ),
            ),
            value=AuthState.tenant_id,
            on_change=AuthState.switch_tenant,
        ),
        rx.hstack(
            rx.icon("building_2", size=16, color=rx.color("gray", 10), flex_shrink="0"),
            rx.text(
                AuthState.tenant_name,
                weight="medium",
                white_space="nowrap",
                overflow="hidden",
                text_overflow="ellipsis",
            ),
            align="center",
            spacing="2",
            min_width="0",
        ),
    )


def user_badge() -> rx.Component:
    return rx.hstack(
        rx.text(AuthState.user_email, size="2", data_testid="user-email"),
        rx.badge(AuthState.role, variant="soft"),
        align="center",
        spacing="2",
        display=WIDE,
    )


def header() -> rx.Component:
    return rx.hstack(
        rx.box(mobile_menu(), display=NARROW),
        rx.box(brand(compact=True), display=NARROW),
        tenant_switcher(),
        rx.spacer(),
        user_badge(),
        rx.color_mode.button(aria_label="Toggle light and dark mode"),
        rx.button(
            rx.icon("log_out", size=16),
            rx.text("Sign out", display=WIDE),
            variant="soft",
            color_scheme="gray",
            aria_label="Sign out",
            on_click=AuthState.sign_out,
        ),
        as_="header",
        align="center",
        spacing="3",
        width="100%",
        padding="0.75rem 1.5rem",
        border_bottom=f"1px solid {rx.color('gray', 5)}",
        position="sticky",
        top="0",
        z_index="10",
        background=rx.color("gray", 1),
    )


def _waiting() -> rx.Component:
    """Shown while the session is being checked, or when the check could not be done."""
    return rx.center(
        rx.cond(
            AuthState.load_error != "",
            rx.vstack(
                rx.callout(AuthState.load_error, icon="circle_alert", color_scheme="red", role="alert"),
                rx.button("Try again", on_click=AuthState.check_session),
                align="center",
            ),
            rx.spinner(size="3"),
        ),
        height="100vh",
    )


def shell(content: rx.Component) -> rx.Component:
    """Wrap a page's content in the authenticated frame (rendered only once signed in)."""
    return rx.cond(
        AuthState.signed_in,
        rx.hstack(
            sidebar(),
            rx.vstack(
                header(),
                rx.el.main(
                    content,
                    width="100%",
                    max_width="72rem",
                    padding=rx.breakpoints(initial="1rem", sm="2rem"),
                ),
                spacing="0",
                flex="1",
                min_width="0",
            ),
            spacing="0",
            width="100%",
            min_height="100vh",
            align="start",
        ),
        _waiting(),
    )
