"""The playground's chat: turns (message, tool cards, answer, numbers), the answer
being streamed, and the message box."""

from __future__ import annotations

import reflex as rx

from atom_ui.states.playground import PlaygroundState as S
from atom_ui.states.playground import ToolCard, Turn

_MONO = {"font_family": "var(--code-font-family)", "font_size": "0.8rem"}


def _pre(text: rx.Var[str], label: str) -> rx.Component:
    return rx.vstack(
        rx.text(label, size="1", weight="medium", color_scheme="gray"),
        rx.el.pre(
            text,
            white_space="pre-wrap",
            word_break="break-word",
            margin="0",
            padding="0.5rem 0.75rem",
            border_radius="var(--radius-2)",
            background=rx.color("gray", 3),
            width="100%",
            **_MONO,
        ),
        spacing="1",
        width="100%",
    )


def _tool_status(card: ToolCard) -> rx.Component:
    return rx.match(
        card.status,
        ("running", rx.hstack(rx.spinner(size="1"), rx.text("running", size="1"), align="center", spacing="1")),
        ("ok", rx.badge("ok", color_scheme="green", variant="soft")),
        ("refused", rx.badge("refused", color_scheme="orange", variant="soft")),
        rx.badge("error", color_scheme="red", variant="soft"),
    )


def tool_card(card: ToolCard) -> rx.Component:
    """A tool call, folded to its name and status; open it for arguments and output."""
    return rx.el.details(
        rx.el.summary(
            rx.hstack(
                rx.icon("wrench", size=14, color=rx.color("accent", 10)),
                rx.text(card.name, size="2", weight="medium", **_MONO),
                _tool_status(card),
                align="center",
                spacing="2",
                display="inline-flex",
            ),
            cursor="pointer",
            aria_label="Tool call " + card.name,
        ),
        rx.vstack(
            _pre(card.arguments, "Arguments"),
            rx.cond(card.output != "", _pre(card.output, "Output")),
            rx.cond(card.error != "", _pre(card.error, "Error")),
            spacing="2",
            padding_top="0.5rem",
            width="100%",
        ),
        data_testid="tool-card",
        border=f"1px solid {rx.color('gray', 6)}",
        border_radius="var(--radius-3)",
        padding="0.5rem 0.75rem",
        width="100%",
        background=rx.color("gray", 2),
    )


def _user_bubble(text: rx.Var[str]) -> rx.Component:
    return rx.hstack(
        rx.box(
            rx.text(text, white_space="pre-wrap", word_break="break-word", size="3"),
            background=rx.color("accent", 3),
            border_radius="var(--radius-4)",
            padding="0.5rem 0.9rem",
            max_width="85%",
            data_testid="user-message",
        ),
        justify="end",
        width="100%",
    )


def _agent_row(*children: rx.Component) -> rx.Component:
    return rx.hstack(
        rx.center(
            rx.icon("bot", size=16),
            width="1.75rem",
            height="1.75rem",
            border_radius="50%",
            background=rx.color("accent", 4),
            color=rx.color("accent", 11),
            flex_shrink="0",
        ),
        rx.vstack(*children, spacing="2", width="100%", min_width="0"),
        align="start",
        spacing="3",
        width="100%",
    )


def _answer(text: rx.Var[str], test_id: str = "answer") -> rx.Component:
    """A model's answer as Markdown (GitHub flavour). Raw HTML in it is shown as text, never
    rendered: answers can repeat what a prompt injection put in a tool result."""
    return rx.box(
        rx.markdown(text, use_raw=False, use_math=False, use_katex=False),
        word_break="break-word",
        width="100%",
        data_testid=test_id,
    )


def _error(turn: Turn) -> rx.Component:
    return rx.callout.root(
        rx.callout.icon(rx.icon(rx.cond(turn.status == "cancelled", "circle_stop", "circle_alert"))),
        rx.vstack(
            rx.callout.text(turn.error, weight="medium"),
            rx.cond(
                turn.hint != "",
                rx.callout.text(
                    turn.hint,
                    rx.cond(turn.hint_link != "", rx.link(" Open Settings", href=turn.hint_link, weight="medium")),
                    size="2",
                ),
            ),
            spacing="1",
        ),
        color_scheme=rx.cond(turn.status == "cancelled", "gray", "red"),
        role="alert",
        size="1",
        width="100%",
        data_testid="turn-error",
    )


def _meta(turn: Turn) -> rx.Component:
    return rx.hstack(
        rx.text(turn.meta, size="1", color_scheme="gray", data_testid="turn-meta"),
        rx.cond(
            turn.model != "",
            rx.badge(turn.model, variant="outline", color_scheme=rx.cond(turn.offline, "gray", "accent"), size="1"),
        ),
        align="center",
        spacing="2",
        wrap="wrap",
    )


def turn_view(turn: Turn) -> rx.Component:
    return rx.vstack(
        _user_bubble(turn.prompt),
        _agent_row(
            rx.foreach(turn.tools, tool_card),
            rx.cond(turn.answer != "", _answer(turn.answer)),
            rx.cond(turn.error != "", _error(turn)),
            rx.cond(turn.meta != "", _meta(turn)),
        ),
        spacing="3",
        width="100%",
        data_testid="turn",
    )


def live_turn() -> rx.Component:
    """The answer being written, token by token, until the run ends."""
    return rx.cond(
        S.running,
        rx.vstack(
            _user_bubble(S.live_prompt),
            _agent_row(
                rx.foreach(S.live_tools, tool_card),
                rx.cond(S.live_text != "", _answer(S.live_text, "live-answer")),
                rx.hstack(
                    rx.spinner(size="1"),
                    rx.text(rx.cond(S.stop_requested, "Stopping…", "Thinking…"), size="1", color_scheme="gray"),
                    align="center",
                    spacing="2",
                ),
            ),
            spacing="3",
            width="100%",
            data_testid="live-turn",
            aria_busy="true",
        ),
    )


def _first_message_hint() -> rx.Component:
    return rx.center(
        rx.vstack(
            rx.icon("message_square", size=32, color=rx.color("accent", 9)),
            rx.text("Send a message to start the conversation.", weight="medium"),
            rx.text(
                "Try “What is 12 * (3 + 4)?” with an agent that has the calculator tool.",
                size="2",
                color_scheme="gray",
                align="center",
            ),
            align="center",
            spacing="2",
        ),
        padding="3rem 1rem",
        width="100%",
    )


def transcript() -> rx.Component:
    return rx.auto_scroll(
        rx.cond(
            (S.turns.length() == 0) & ~S.running,
            _first_message_hint(),
            rx.vstack(
                rx.cond(
                    S.trimmed,
                    rx.text(
                        "Earlier messages of this chat are not shown here; the agent still sees its recent history.",
                        size="1",
                        color_scheme="gray",
                        align="center",
                        width="100%",
                    ),
                ),
                rx.foreach(S.turns, turn_view),
                live_turn(),
                spacing="5",
                width="100%",
            ),
        ),
        role="log",
        aria_label="Conversation",
        aria_live="polite",
        data_testid="transcript",
        width="100%",
        height=rx.breakpoints(initial="55vh", md="58vh"),
        padding="1rem",
        border=f"1px solid {rx.color('gray', 5)}",
        border_radius="var(--radius-4)",
        background=rx.color("gray", 1),
    )


def composer() -> rx.Component:
    return rx.form(
        rx.vstack(
            rx.hstack(
                rx.text_area(
                    name="message",
                    id="playground-message",
                    placeholder="Message the agent (Enter to send, Shift+Enter for a new line)",
                    aria_label="Message",
                    enter_key_submit=True,
                    rows="2",
                    resize="vertical",
                    width="100%",
                    disabled=~S.can_run | S.running,
                ),
                rx.cond(
                    S.running,
                    rx.button(
                        rx.icon("square", size=14),
                        "Stop",
                        type="button",
                        color_scheme="red",
                        variant="soft",
                        on_click=S.stop,
                        size="3",
                    ),
                    rx.button(
                        rx.icon("send", size=14),
                        "Send",
                        type="submit",
                        size="3",
                        disabled=(S.agent_id == "") | ~S.can_run,
                    ),
                ),
                align="end",
                spacing="2",
                width="100%",
            ),
            rx.cond(
                S.input_error != "",
                rx.text(S.input_error, size="2", color_scheme="red", role="alert"),
                rx.cond(
                    ~S.can_run,
                    rx.text("Your role 'viewer' can read agents but not run them.", size="2", color_scheme="gray"),
                ),
            ),
            spacing="1",
            width="100%",
        ),
        on_submit=S.send,
        reset_on_submit=True,
        width="100%",
    )
