"""Settings → Providers: the workspace's model provider keys (write-only) and base URLs."""

from __future__ import annotations

import reflex as rx

from atom_ui.components.dialogs import dialog_buttons
from atom_ui.components.feedback import error_callout
from atom_ui.components.settings_common import field, section
from atom_ui.components.table import data_table
from atom_ui.states.settings import ProviderRow
from atom_ui.states.settings import SettingsState as S

SUGGESTED = ("openai", "anthropic", "gemini", "mistral", "groq", "openrouter", "ollama", "hosted_vllm", "lm_studio")


def _test_result(row: ProviderRow) -> rx.Component:
    return rx.cond(
        S.test_provider_name == row.provider,
        rx.cond(
            S.test_running,
            rx.hstack(rx.spinner(size="1"), rx.text("Testing…", size="1"), align="center", spacing="1"),
            rx.cond(
                S.test_message != "",
                rx.hstack(
                    rx.badge(rx.cond(S.test_ok, "ok", "error"), color_scheme=rx.cond(S.test_ok, "green", "red")),
                    rx.text(S.test_message, size="1", max_width="22rem"),
                    align="center",
                    spacing="2",
                    role="status",
                    data_testid="provider-test-result",
                ),
            ),
        ),
        rx.text("—", size="1", color_scheme="gray"),
    )


def _test_popover(row: ProviderRow) -> rx.Component:
    return rx.popover.root(
        rx.popover.trigger(
            rx.button("Test connection", size="1", variant="soft", disabled=S.test_running),
        ),
        rx.popover.content(
            rx.form(
                rx.vstack(
                    rx.el.input(type="hidden", name="provider", value=row.provider),
                    rx.text("One tiny request with the stored settings.", size="2"),
                    rx.input(
                        name="model", placeholder="Model, e.g. gpt-4o-mini", aria_label="Model to test", width="100%"
                    ),
                    rx.text("Optional for openai, anthropic and ollama.", size="1", color_scheme="gray"),
                    rx.button("Run test", type="submit", size="2", loading=S.test_running),
                    spacing="2",
                    width="18rem",
                ),
                on_submit=S.test_provider,
                reset_on_submit=False,
            ),
        ),
    )


def _row(row: ProviderRow) -> rx.Component:
    return rx.table.row(
        rx.table.row_header_cell(rx.text(row.provider, weight="medium")),
        rx.table.cell(
            rx.cond(
                row.key_set,
                rx.code(row.key, data_testid="provider-key-hint"),
                rx.text(row.key, size="2", color_scheme="gray"),
            )
        ),
        rx.table.cell(rx.cond(row.api_base != "", rx.code(row.api_base), rx.text("default", color_scheme="gray"))),
        rx.table.cell(rx.text(row.updated, size="1", white_space="nowrap")),
        rx.table.cell(_test_result(row)),
        rx.table.cell(
            rx.cond(
                S.can_manage_providers,
                rx.hstack(
                    _test_popover(row),
                    rx.button(
                        "Edit",
                        size="1",
                        variant="soft",
                        color_scheme="gray",
                        on_click=S.open_provider_dialog(row.provider),
                    ),
                    rx.icon_button(
                        rx.icon("trash_2", size=14),
                        size="1",
                        variant="soft",
                        color_scheme="red",
                        aria_label="Delete provider " + row.provider,
                        on_click=S.ask("delete_provider", row.provider, row.provider),
                    ),
                    spacing="2",
                ),
            )
        ),
        align="center",
    )


def _table() -> rx.Component:
    return rx.cond(
        S.providers.length() == 0,
        rx.text(
            "No provider is configured. Agents on the offline model work without one; "
            "add a provider's API key to use its models (e.g. openai/gpt-4o-mini).",
            size="2",
            color_scheme="gray",
        ),
        data_table(
            ("Provider", "API key", "Base URL", "Updated", "Connection", ""), S.providers, _row, label="Model providers"
        ),
    )


def _dialog() -> rx.Component:
    editing = S.provider_edit != ""
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title(rx.cond(editing, "Edit provider " + S.provider_edit, "Add a provider")),
            rx.dialog.description(
                "The API key is stored encrypted and never shown again: the page shows its last four characters.",
                size="2",
            ),
            rx.form(
                rx.vstack(
                    rx.cond(
                        editing,
                        rx.fragment(),
                        rx.fragment(
                            field(
                                "Provider",
                                "provider",
                                "provider-name",
                                S.provider_errors.get("provider", ""),
                                hint="A LiteLLM provider prefix: " + ", ".join(SUGGESTED[:4]) + ", …",
                                list="provider-suggestions",
                                placeholder="openai",
                            ),
                            rx.el.datalist(*[rx.el.option(value=p) for p in SUGGESTED], id="provider-suggestions"),
                        ),
                    ),
                    field(
                        "API key",
                        "api_key",
                        "provider-api-key",
                        S.provider_errors.get("api_key", ""),
                        hint=rx.cond(
                            editing, "Leave empty to keep the stored key.", "Optional for local servers (Ollama…)."
                        ),
                        type="password",
                        auto_complete="new-password",
                    ),
                    field(
                        "Base URL",
                        "api_base",
                        "provider-api-base",
                        S.provider_errors.get("api_base", ""),
                        hint="Optional: your own endpoint (Ollama, vLLM, LM Studio, a proxy). Empty uses the default.",
                        default_value=S.provider_edit_base,
                        placeholder="https://…",
                    ),
                    error_callout(S.provider_form_error),
                    dialog_buttons(rx.button("Save", type="submit", loading=S.provider_busy)),
                    spacing="3",
                    width="100%",
                ),
                on_submit=S.save_provider,
                reset_on_submit=False,
            ),
            max_width="30rem",
        ),
        open=S.provider_dialog_open,
        on_open_change=S.set_provider_dialog_open,
    )


def providers_tab() -> rx.Component:
    return section(
        "Model providers",
        "API keys and endpoints this workspace's agents use to reach model providers.",
        error_callout(S.providers_error),
        rx.cond(
            S.providers_error == "",
            rx.vstack(
                rx.cond(
                    S.can_manage_providers,
                    rx.button(rx.icon("plus", size=16), "Add provider", on_click=S.open_provider_dialog("")),
                    rx.text("Only admins and owners can change providers.", size="2", color_scheme="gray"),
                ),
                _table(),
                spacing="3",
                width="100%",
            ),
        ),
        _dialog(),
    )
