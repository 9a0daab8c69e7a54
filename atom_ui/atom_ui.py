"""The Reflex app: pages, and the ATOM REST API on the same port.

Reflex mounts itself inside the FastAPI app at "", so /api/v1/*, /health and
/metrics are answered by atom_core before Reflex sees a request.
"""

from __future__ import annotations

from types import ModuleType

import reflex as rx

from atom_core.interfaces.api.app import create_api, lifespan
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

# A page module has `page()` and may list its own `ON_LOAD` handlers (they run
# after the session check) and `EXTRA_ROUTES` ({route: page function}, e.g. /runs/[id]).
SHELL_PAGES: dict[str, ModuleType] = {
    "/marketplace": marketplace,
    "/agents": agents,
    "/playground": playground,
    "/workflows": workflows,
    "/runs": runs,
    "/analytics": analytics,
    "/governance": governance,
    "/settings": settings,
}

app = rx.App(
    api_transformer=create_api(),
    head_components=[rx.el.link(rel="icon", href="/favicon.svg", type="image/svg+xml")],
)
app.register_lifespan_task(lifespan)  # Reflex runs its own lifespan, not the mounted API's

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
    module = SHELL_PAGES[item.route]
    on_load = [AuthState.check_session, *getattr(module, "ON_LOAD", ())]
    app.add_page(shell(module.page()), route=item.route, title=f"{item.label} · ATOM", on_load=on_load)
    for route, extra_page in getattr(module, "EXTRA_ROUTES", {}).items():
        extra_load = [AuthState.check_session, *getattr(module, "EXTRA_ON_LOAD", ())]
        app.add_page(shell(extra_page()), route=route, title=f"{item.label} · ATOM", on_load=extra_load)
