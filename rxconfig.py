"""Reflex configuration for the ATOM dashboard.

Serve everything on one port with
`reflex run --env prod --single-port --backend-port PORT`.
The database is ATOM's own (Alembic migrations), so no `db_url` here.
"""

import reflex as rx

from atom_core.settings import get_settings

# Reflex wraps the whole app (API included) in its own CORS layer, allowing any
# origin by default; ATOM_CORS_ORIGINS narrows it. The list must then include
# the dashboard's own origin, or its websocket is refused.
_cors_origins = get_settings().cors_origins or ["*"]

config = rx.Config(
    app_name="atom_ui",
    telemetry_enabled=False,
    cors_allowed_origins=_cors_origins,
    show_built_with_reflex=False,
    plugins=[
        # Explicit, so Reflex does not warn about implicit Radix enablement.
        rx.plugins.RadixThemesPlugin(theme=rx.theme(accent_color="indigo", radius="medium")),
    ],
    # The app sits behind a login, so a public sitemap has nothing to list.
    disable_plugins=[rx.plugins.SitemapPlugin],
)
