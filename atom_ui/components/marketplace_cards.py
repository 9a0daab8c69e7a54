"""Marketplace pieces: the toolbar, template cards grouped by category, the
detail dialog and the install confirmation."""

from __future__ import annotations

import reflex as rx

from atom_ui.components.agent_badges import model_badge, tool_badges
from atom_ui.components.dialogs import confirm_dialog, dialog_buttons, dialog_header
from atom_ui.components.empty_state import empty_state
from atom_ui.state import AuthState
from atom_ui.states.marketplace import CardGroup, CategoryOption, MarketplaceState, TemplateCard

S = MarketplaceState
CAN_WRITE = AuthState.role != "viewer"
MONO = "var(--code-font-family)"


def installed_badge(count: rx.Var[int]) -> rx.Component:
    return rx.cond(
        count > 0,
        rx.badge(
            rx.icon("circle_check", size=12),
            rx.cond(count > 1, f"Installed ({count})", "Installed"),
            color_scheme="green",
            variant="soft",
        ),
    )


def toolbar() -> rx.Component:
    return rx.flex(
        rx.input(
            rx.input.slot(rx.icon("search", size=16)),
            rx.cond(
                S.query != "",
                rx.input.slot(
                    rx.icon_button(
                        rx.icon("x", size=14),
                        variant="ghost",
                        size="1",
                        aria_label="Clear search",
                        on_click=S.clear_search,
                    )
                ),
            ),
            value=S.query,
            on_change=S.set_query,
            placeholder="Search by name, task or persona",
            aria_label="Search templates",
            type="search",
            size="3",
            flex="1",
            min_width="12rem",
        ),
        rx.select.root(
            rx.select.trigger(aria_label="Category", min_width="14rem"),
            rx.select.content(
                rx.foreach(S.categories, lambda c: _category_item(c)),
            ),
            value=S.category,
            on_change=S.set_category,
            size="3",
        ),
        spacing="3",
        wrap="wrap",
        width="100%",
        align="center",
    )


def _category_item(option: CategoryOption) -> rx.Component:
    return rx.select.item(option.label, value=option.value)


def template_card(card: TemplateCard) -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.heading(card.name, size="4", as_="h3"),
                rx.spacer(),
                installed_badge(card.installed),
                align="start",
                width="100%",
            ),
            rx.text(card.description, size="2", color_scheme="gray"),
            rx.spacer(),
            tool_badges(card.tools),
            rx.hstack(
                model_badge(card.model_label, card.offline),
                rx.spacer(),
                rx.button(
                    "Details",
                    rx.icon("arrow_right", size=14),
                    variant="soft",
                    size="2",
                    aria_label="Details of " + card.name,
                    on_click=S.open_detail(card.slug),
                ),
                align="center",
                width="100%",
            ),
            spacing="3",
            height="100%",
        ),
        data_testid="template-card-" + card.slug,
        height="100%",
    )


def card_group(group: CardGroup) -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.heading(group.label, size="5", as_="h2"),
            rx.badge(group.cards.length(), variant="surface", color_scheme="gray"),
            align="center",
            spacing="2",
        ),
        rx.grid(
            rx.foreach(group.cards, template_card),
            columns=rx.breakpoints(initial="1", sm="2", lg="3"),
            spacing="4",
            width="100%",
        ),
        spacing="3",
        width="100%",
        as_="section",
        aria_label=group.label,
    )


def no_results() -> rx.Component:
    return empty_state(
        "search_x",
        "No template matches your search",
        "Try fewer or other words (every word must appear), or look in all categories.",
        rx.button("Clear search", rx.icon("rotate_ccw", size=14), variant="soft", on_click=S.clear_search),
        test_id="marketplace-no-results",
    )


def _section(title: str, *children: rx.Component) -> rx.Component:
    return rx.vstack(
        rx.text(title, size="1", weight="bold", color_scheme="gray", text_transform="uppercase"),
        *children,
        spacing="1",
        width="100%",
    )


def detail_dialog() -> rx.Component:
    d = S.detail
    return rx.dialog.root(
        rx.dialog.content(
            rx.vstack(
                dialog_header(
                    d.name,
                    rx.badge(d.category_label, variant="surface"),
                    installed_badge(S.detail_installed),
                    wrap="wrap",
                ),
                rx.dialog.description(d.description, size="2", color_scheme="gray"),
                _section("Persona", rx.text(d.persona, size="2")),
                _section(
                    "System prompt",
                    rx.box(
                        rx.text(
                            d.system_prompt, size="2", white_space="pre-wrap", font_family="var(--code-font-family)"
                        ),
                        max_height="16rem",
                        overflow_y="auto",
                        padding="0.75rem",
                        border_radius="var(--radius-3)",
                        background=rx.color("gray", 2),
                        border=f"1px solid {rx.color('gray', 5)}",
                        width="100%",
                        tab_index=0,
                        aria_label="System prompt",
                        data_testid="template-prompt",
                    ),
                ),
                rx.grid(
                    _section("Tools", tool_badges(d.tools)),
                    _section("Default model", rx.box(model_badge(d.model_label, d.offline))),
                    _section("Temperature", rx.text(d.temperature, size="2")),
                    _section("Max tokens", rx.text(d.max_tokens, size="2")),
                    columns=rx.breakpoints(initial="1", sm="2"),
                    spacing="3",
                    width="100%",
                ),
                rx.cond(
                    S.installed_agent_slug != "",
                    rx.callout(
                        rx.hstack(
                            rx.text("Installed as agent ", rx.code(S.installed_agent_slug), "."),
                            rx.link("Open it in Agents", href="/agents?agent=" + S.installed_agent_slug),
                            rx.link("Chat with it", href="/playground?agent=" + S.installed_agent_slug),
                            wrap="wrap",
                            spacing="3",
                        ),
                        icon="circle_check",
                        color_scheme="green",
                        width="100%",
                        data_testid="install-done",
                    ),
                ),
                dialog_buttons(
                    rx.cond(
                        CAN_WRITE,
                        rx.button(
                            rx.icon("download", size=16),
                            rx.cond(S.detail_installed > 0, "Install again", "Install"),
                            on_click=S.ask_install,
                        ),
                        rx.tooltip(
                            rx.button(rx.icon("download", size=16), "Install", disabled=True),
                            content="Viewers cannot install agents",
                        ),
                    ),
                    cancel_label="Close",
                ),
                spacing="4",
                width="100%",
            ),
            max_width="44rem",
            data_testid="template-detail",
        ),
        open=S.detail_open,
        on_open_change=S.set_detail_open,
    )


def install_confirm() -> rx.Component:
    return confirm_dialog(
        "Install " + S.detail.name + "?",
        "It becomes an agent of this workspace with the template's prompt, tools and model. "
        "You can change all of it afterwards.",
        body=rx.vstack(
            rx.el.label(rx.text("Agent slug", size="2", weight="medium"), html_for="install-slug"),
            rx.input(
                id="install-slug",
                value=S.install_slug,
                on_change=S.set_install_slug,
                aria_invalid=rx.cond(S.install_error != "", "true", "false"),
                aria_describedby="install-slug-message",
                color_scheme=rx.cond(S.install_error != "", "red", "gray"),
                width="100%",
            ),
            rx.cond(
                S.install_error != "",
                rx.text(S.install_error, size="2", color_scheme="red", role="alert", id="install-slug-message"),
                rx.text(
                    "Lower-case letters, digits and dashes; unique in this workspace.",
                    size="1",
                    color_scheme="gray",
                    id="install-slug-message",
                ),
            ),
            spacing="1",
            width="100%",
            margin_top="1rem",
        ),
        confirm_label="Confirm install",
        on_confirm=S.confirm_install,
        loading=S.installing,
        destructive=False,
        open=S.confirm_open,
        on_open_change=S.set_confirm_open,
        max_width="30rem",
    )
