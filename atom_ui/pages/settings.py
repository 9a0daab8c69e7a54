"""/settings: the signed-in account, and the workspace's providers, API keys and members
(?tab=providers|api-keys|members opens a tab)."""

from __future__ import annotations

import reflex as rx

from atom_ui.components.page import page_frame, page_header
from atom_ui.components.settings_apikeys import apikeys_tab
from atom_ui.components.settings_common import settings_confirm
from atom_ui.components.settings_members import members_tab
from atom_ui.components.settings_providers import providers_tab
from atom_ui.state import AuthState
from atom_ui.states.settings import SettingsState as S

ON_LOAD = [S.load]


def _account() -> rx.Component:
    return rx.card(
        rx.data_list.root(
            rx.data_list.item(rx.data_list.label("Email"), rx.data_list.value(AuthState.user_email)),
            rx.data_list.item(rx.data_list.label("Workspace"), rx.data_list.value(AuthState.tenant_name)),
            rx.data_list.item(rx.data_list.label("Role"), rx.data_list.value(rx.badge(AuthState.role, variant="soft"))),
        ),
        width="100%",
    )


def _tabs() -> rx.Component:
    return rx.tabs.root(
        rx.tabs.list(
            rx.tabs.trigger("Providers", value="providers"),
            rx.tabs.trigger("API keys", value="api-keys"),
            rx.tabs.trigger("Members", value="members"),
        ),
        rx.tabs.content(rx.box(providers_tab(), padding_top="1rem"), value="providers"),
        rx.tabs.content(rx.box(apikeys_tab(), padding_top="1rem"), value="api-keys"),
        rx.tabs.content(rx.box(members_tab(), padding_top="1rem"), value="members"),
        value=S.tab,
        on_change=S.set_tab,
        width="100%",
    )


def page() -> rx.Component:
    return page_frame(
        page_header("Settings", "Your account, and the workspace's model providers, API keys and members."),
        _account(),
        _tabs(),
        settings_confirm(),
        on_tenant_switch=S.reload_if_tenant_changed,
    )
