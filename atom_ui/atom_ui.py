"""The Reflex app: pages, and the ATOM REST API on the same port.

Reflex mounts itself inside the FastAPI app at "", so /api/v1/*, /health and
/metrics are answered by atom_core before Reflex sees a request.
"""

from __future__ import annotations

from collections.abc import Callable

import reflex as rx

from atom_core.interfaces.api.app import create_api
from atom_ui.layout import NAV_ITEMS, shell
from atom_ui.pages import (
    agents,
    analytics,
    governance,
    login,
    marketplace,
    playground,
    runs,
    settings,
    signup,
    workflows,
)
from atom_ui.state import HOME_ROUTE, AuthState

SHELL_PAGES: dict[str, Callable[[], rx.Component]] = {
    "/marketplace": marketplace.page,
    "/agents": agents.page,
    "/playground": playground.page,
    "/workflows": workflows.page,
    "/runs": runs.page,
    "/analytics": analytics.page,
    "/governance": governance.page,
    "/settings": settings.page,
}

app = rx.App(
    api_transformer=create_api(),
    head_components=[rx.el.link(rel="icon", href="/favicon.svg", type="image/svg+xml")],
)

app.add_page(login.page, route="/login", title="Sign in · ATOM", on_load=AuthState.reset_form)
app.add_page(signup.page, route="/signup", title="Create account · ATOM", on_load=AuthState.reset_form)
app.add_page(
    rx.center(rx.spinner(size="3"), height="100vh"),
    route="/",
    title="ATOM",
    on_load=rx.redirect(HOME_ROUTE, replace=True),
)
# Driven by the sidebar's list, so every nav entry has a page (KeyError if not).
for item in NAV_ITEMS:
    app.add_page(
        shell(SHELL_PAGES[item.route]()),
        route=item.route,
        title=f"{item.label} · ATOM",
        on_load=AuthState.check_session,
    )
