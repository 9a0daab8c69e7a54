"""/governance: a placeholder until the governance module lands."""

from __future__ import annotations

import reflex as rx

from atom_ui.components.empty_state import placeholder_page


def page() -> rx.Component:
    return placeholder_page(
        title="Governance",
        summary="Policies, budgets, agent maturity levels and the audit log.",
        icon="shield_check",
        headline="Governance controls are not here yet",
        detail=(
            "They arrive with the governance module: set budgets and policies per workspace and review who did what."
        ),
    )
