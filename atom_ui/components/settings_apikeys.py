"""Settings → API keys: create (the key is shown once), list, revoke."""

from __future__ import annotations

import reflex as rx

from atom_ui.components.feedback import error_callout
from atom_ui.components.pager import more_button
from atom_ui.components.settings_common import field, role_form, role_select, section
from atom_ui.components.table import data_table
from atom_ui.states.settings import KeyRow
from atom_ui.states.settings import SettingsState as S


def _create_form() -> rx.Component:
    return role_form(
        rx.box(
            field("Key name", "name", "apikey-name", S.key_errors.get("name", ""), placeholder="ci-pipeline"),
            flex="1",
            min_width="12rem",
        ),
        role_select("role", "apikey-role", "Key role"),
        rx.button(rx.icon("key_round", size=16), "Create key", type="submit"),
        error=S.key_form_error,
        on_submit=S.create_key,
    )


def _row(row: KeyRow) -> rx.Component:
    return rx.table.row(
        rx.table.row_header_cell(rx.text(row.name, weight="medium")),
        rx.table.cell(rx.code(row.prefix + "_…")),
        rx.table.cell(rx.badge(row.role, variant="soft")),
        rx.table.cell(rx.text(row.created, size="1", white_space="nowrap")),
        rx.table.cell(rx.text(row.last_used, size="1", white_space="nowrap")),
        rx.table.cell(
            rx.cond(
                row.revoked,
                rx.badge("revoked", color_scheme="gray"),
                rx.badge("active", color_scheme="green"),
            )
        ),
        rx.table.cell(
            rx.cond(
                row.can_revoke,
                rx.button(
                    "Revoke",
                    size="1",
                    variant="soft",
                    color_scheme="red",
                    aria_label="Revoke " + row.name,
                    on_click=S.ask("revoke_key", row.id, "The key " + row.name),
                ),
            )
        ),
        align="center",
        data_testid="apikey-row",
    )


def _table() -> rx.Component:
    return rx.cond(
        S.keys.length() == 0,
        rx.text(
            "No API keys yet. Create one to call the REST API or the CLI from scripts.", size="2", color_scheme="gray"
        ),
        rx.vstack(
            data_table(("Name", "Key", "Role", "Created", "Last used", "Status", ""), S.keys, _row, label="API keys"),
            more_button("Show more", cursor=S.keys_cursor, on_click=S.more_keys),
            spacing="2",
            width="100%",
        ),
    )


def new_key_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Copy your new API key"),
            rx.dialog.description("Key “" + S.new_key_name + "” is ready.", size="2"),
            rx.vstack(
                rx.callout(
                    "This is the only time the key is shown. Store it somewhere safe now: "
                    "ATOM keeps only a hash and cannot show it again.",
                    icon="triangle_alert",
                    color_scheme="amber",
                    width="100%",
                ),
                rx.hstack(
                    rx.code(
                        S.new_key,
                        data_testid="new-api-key",
                        word_break="break-all",
                        padding="0.5rem",
                        flex="1",
                    ),
                    rx.icon_button(
                        rx.icon("copy", size=16),
                        aria_label="Copy key",
                        on_click=[rx.set_clipboard(S.new_key), rx.toast.success("Copied to the clipboard.")],
                    ),
                    align="center",
                    spacing="2",
                    width="100%",
                ),
                rx.hstack(
                    rx.dialog.close(rx.button("I have stored it")),
                    justify="end",
                    width="100%",
                ),
                spacing="3",
                width="100%",
                margin_top="0.75rem",
            ),
            max_width="34rem",
        ),
        open=S.new_key_open,
        on_open_change=S.close_new_key,
    )


def apikeys_tab() -> rx.Component:
    return section(
        "API keys",
        "Keys for the REST API (header Authorization: Bearer atom_…). Admins see every key; others see their own.",
        error_callout(S.keys_error),
        rx.cond(
            S.keys_error == "",
            rx.vstack(
                rx.cond(S.can_create_keys, _create_form()),
                _table(),
                spacing="4",
                width="100%",
            ),
        ),
        new_key_dialog(),
    )
