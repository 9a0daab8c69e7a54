"""/marketplace: ready-made agent templates by category, searchable, installed with a confirmation."""

from __future__ import annotations

import reflex as rx

from atom_ui.components.feedback import loaded_body
from atom_ui.components.marketplace_cards import card_group, detail_dialog, install_confirm, no_results, toolbar
from atom_ui.components.page import page_frame, page_header
from atom_ui.states.marketplace import MarketplaceState as S

ON_LOAD = [S.load]


def page() -> rx.Component:
    return page_frame(
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
        loaded_body(
            rx.cond(
                S.no_results,
                no_results(),
                rx.vstack(rx.foreach(S.groups, card_group), spacing="6", width="100%"),
            ),
            error=S.error,
            waiting=~S.loaded,
        ),
        detail_dialog(),
        install_confirm(),
        on_tenant_switch=S.reload_if_tenant_changed,
    )
