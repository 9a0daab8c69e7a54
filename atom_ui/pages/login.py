"""/login: sign in with email and password."""

from __future__ import annotations

import reflex as rx

from atom_ui.components.auth_card import auth_card
from atom_ui.components.feedback import error_callout
from atom_ui.components.forms import form_notice, text_field
from atom_ui.state import AuthState


def page() -> rx.Component:
    errors = AuthState.field_errors
    return auth_card(
        "Sign in",
        "Welcome back. Sign in to your workspace.",
        form_notice(AuthState.notice),
        error_callout(AuthState.form_error),
        rx.form(
            rx.vstack(
                text_field("Email", "email", errors.get("email", ""), type="email", auto_complete="email"),
                text_field(
                    "Password",
                    "password",
                    errors.get("password", ""),
                    type="password",
                    auto_complete="current-password",
                ),
                rx.button("Sign in", type="submit", size="3", width="100%", loading=AuthState.busy),
                spacing="4",
                width="100%",
            ),
            on_submit=AuthState.login,
            width="100%",
        ),
        rx.text(
            "New to ATOM? ",
            rx.link("Create an account", href="/signup"),
            size="2",
            align="center",
            width="100%",
        ),
    )
