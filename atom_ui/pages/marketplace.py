"""/marketplace: ready-made agent templates by category, searchable, installed with a confirmation."""

from __future__ import annotations

import reflex as rx

from atom_ui.components.empty_state import page_header
from atom_ui.components.marketplace_cards import card_group, detail_dialog, install_confirm, no_results, toolbar
from atom_ui.state import AuthState
from atom_ui.states.marketplace import MarketplaceState as S

ON_LOAD = [S.load]


def _tenant_watch() -> rx.Component:
    # The outer box's key is the tenant, so switching workspace remounts the inner box, whose
    # on_mount reloads the page (a key on the inner box itself would not re-run its on_mount:
    # Reflex puts the key inside the memoized component that owns the effect).
    return rx.box(
        rx.box(on_mount=S.reload_if_tenant_changed),
        key=AuthState.tenant_id,
        display="none",
    )


def _body() -> rx.Component:
    return rx.cond(
        S.error != "",
        rx.callout(S.error, icon="circle_alert", color_scheme="red", role="alert", width="100%"),
        rx.cond(
            ~S.loaded,
            rx.center(rx.spinner(size="3"), padding="3rem", width="100%"),
            rx.cond(
                S.no_results,
                no_results(),
                rx.vstack(rx.foreach(S.groups, card_group), spacing="6", width="100%"),
            ),
        ),
    )


def page() -> rx.Component:
    return rx.vstack(
        _tenant_watch(),
        page_header("Marketplace", "Ready-made agents you can install into your workspace and adapt."),
        toolbar(),
        rx.cond(
            S.loaded & (S.error == ""),
            rx.text(
                rx.cond(S.result_count == 1, "1 template", S.result_count.to_string() + " templates"),
                size="2",
                color_scheme="gray",
                aria_live="polite",
                data_testid="marketplace-count",
            ),
        ),
        _body(),
        detail_dialog(),
        install_confirm(),
        spacing="5",
        width="100%",
    )
