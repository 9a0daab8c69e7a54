"""/signup: create a user and their first workspace (tenant)."""

from __future__ import annotations

import reflex as rx

from atom_core.tenancy.validation import PASSWORD_MIN
from atom_ui.components.auth_card import auth_card
from atom_ui.components.feedback import error_callout
from atom_ui.components.forms import text_field
from atom_ui.state import AuthState


def page() -> rx.Component:
    errors = AuthState.field_errors
    return auth_card(
        "Create your account",
        "You become the owner of a new workspace.",
        error_callout(AuthState.form_error),
        rx.form(
            rx.vstack(
                text_field("Email", "email", errors.get("email", ""), type="email", auto_complete="email"),
                text_field(
                    "Password",
                    "password",
                    errors.get("password", ""),
                    type="password",
                    auto_complete="new-password",
                    hint=f"At least {PASSWORD_MIN} characters.",
                ),
                text_field(
                    "Workspace name",
                    "tenant_name",
                    errors.get("tenant_name", ""),
                    auto_complete="organization",
                    hint="Your team or company, e.g. Acme Research.",
                ),
                rx.button("Create account", type="submit", size="3", width="100%", loading=AuthState.busy),
                spacing="4",
                width="100%",
            ),
            on_submit=AuthState.signup,
            width="100%",
        ),
        rx.text(
            "Already have an account? ",
            rx.link("Sign in", href="/login"),
            size="2",
            align="center",
            width="100%",
        ),
    )
