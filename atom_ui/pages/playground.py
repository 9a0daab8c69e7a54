"""/playground: chat with an agent (?agent=<slug> opens that one), answers streamed token by token."""

from __future__ import annotations

import reflex as rx

from atom_ui.components.chat_transcript import composer, transcript
from atom_ui.components.empty_state import empty_state
from atom_ui.components.feedback import loaded_body
from atom_ui.components.page import page_frame, page_header
from atom_ui.states.playground import AgentOption, SessionOption
from atom_ui.states.playground import PlaygroundState as S

ON_LOAD = [S.load]


def _agent_select() -> rx.Component:
    return rx.select.root(
        rx.select.trigger(placeholder="Pick an agent", aria_label="Agent", min_width="14rem", max_width="100%"),
        rx.select.content(
            rx.foreach(S.agents, lambda a: rx.select.item(a.name + " (" + a.slug + ")", value=a.id)),
        ),
        value=S.agent_id,
        on_change=S.choose_agent,
        disabled=S.running,
    )


def _session_item(option: SessionOption) -> rx.Component:
    return rx.menu.item(
        rx.vstack(
            rx.text(option.title, size="2", weight="medium"),
            rx.text(option.detail, size="1", color_scheme="gray"),
            spacing="0",
        ),
        on_click=S.open_session(option.session_id),
        height="auto",
        padding="0.4rem 0.75rem",
    )


def _recent_menu() -> rx.Component:
    return rx.menu.root(
        rx.menu.trigger(
            rx.button(rx.icon("history", size=16), "Recent chats", variant="soft", color_scheme="gray"),
            disabled=S.running,
        ),
        rx.menu.content(
            rx.cond(
                S.recent.length() == 0,
                rx.menu.item("No earlier chats with this agent yet", disabled=True),
                rx.foreach(S.recent, _session_item),
            ),
            max_width="22rem",
        ),
    )


def _toolbar() -> rx.Component:
    agent: AgentOption = S.agent
    return rx.hstack(
        _agent_select(),
        rx.cond(
            S.agent_id != "",
            rx.hstack(
                rx.badge(agent.model, variant="soft", color_scheme=rx.cond(S.agent_offline, "gray", "accent")),
                rx.cond(S.agent_offline, rx.badge("offline", variant="outline", color_scheme="gray")),
                spacing="1",
                align="center",
            ),
        ),
        rx.spacer(),
        _recent_menu(),
        rx.button(
            rx.icon("square_pen", size=16),
            "New chat",
            variant="soft",
            on_click=S.new_chat,
            disabled=S.running,
        ),
        align="center",
        spacing="2",
        wrap="wrap",
        width="100%",
    )


def _no_agents() -> rx.Component:
    return rx.vstack(
        empty_state(
            "bot",
            "No agent to talk to yet",
            "Install one from the Marketplace (one click) or create one under Agents, then come back here.",
        ),
        rx.hstack(
            rx.link(rx.button("Open the Marketplace"), href="/marketplace"),
            rx.link(rx.button("Create an agent", variant="soft"), href="/agents"),
            spacing="3",
            justify="center",
            width="100%",
        ),
        spacing="3",
        width="100%",
    )


def _chat() -> rx.Component:
    return rx.vstack(_toolbar(), transcript(), composer(), spacing="3", width="100%")


def page() -> rx.Component:
    return page_frame(
        page_header("Playground", "Talk to an agent and watch each step: tool calls, tokens, cost and time."),
        loaded_body(
            rx.cond(S.agents.length() == 0, _no_agents(), _chat()),
            error=S.load_error,
            waiting=~S.loaded,
        ),
        on_tenant_switch=S.reload_if_tenant_changed,
        spacing="4",
    )
