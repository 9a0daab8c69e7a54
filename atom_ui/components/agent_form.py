"""The create/edit agent dialog: an uncontrolled form whose service errors appear next to their inputs."""

from __future__ import annotations

import reflex as rx

from atom_core.agents.service import MAX_TOKENS_LIMIT
from atom_core.governance.maturity import LEVELS
from atom_ui.components.dialogs import dialog_buttons, dialog_header
from atom_ui.components.feedback import error_callout
from atom_ui.states.agents import AgentsState

S = AgentsState
MODEL_HINT = "atom/offline is the offline model (no provider needed), or a LiteLLM model like openai/gpt-4o-mini."
MAX_TOKENS_HINT = f"1 to {MAX_TOKENS_LIMIT:,} per answer."
TOOLS_HINT = "The agent may call only the tools ticked here."


def _error(name: str) -> rx.Var[str]:
    return S.field_errors.get(name, "")


def _field(label: str, name: str, control: rx.Component, *, hint: str = "") -> rx.Component:
    """A label, its control, and below it the field's error (or its hint)."""
    error = _error(name)
    return rx.vstack(
        rx.el.label(rx.text(label, size="2", weight="medium"), html_for=f"agent-{name}"),
        control,
        rx.cond(
            error != "",
            rx.text(error, size="2", color_scheme="red", role="alert", id=f"agent-{name}-message"),
            rx.text(hint, size="1", color_scheme="gray", id=f"agent-{name}-message") if hint else rx.fragment(),
        ),
        spacing="1",
        width="100%",
    )


def _invalid(name: str) -> dict:
    error = _error(name)
    return {
        "aria_invalid": rx.cond(error != "", "true", "false"),
        "aria_describedby": f"agent-{name}-message",
        "color_scheme": rx.cond(error != "", "red", "gray"),
    }


def _input(label: str, name: str, *, hint: str = "", **props) -> rx.Component:
    control = rx.input(
        id=f"agent-{name}",
        name=name,
        default_value=S.form_values.get(name, ""),
        auto_complete="off",
        width="100%",
        **_invalid(name),
        **props,
    )
    return _field(label, name, control, hint=hint)


def _tool_choice(tool: rx.Var[str]) -> rx.Component:
    # rx.checkbox renders its own <label> around the box and the text.
    return rx.checkbox(tool, name="tools", value=tool, default_checked=S.form_tools.contains(tool))


def _tools() -> rx.Component:
    return rx.vstack(
        rx.text("Tools", size="2", weight="medium", id="agent-tools-label"),
        rx.flex(
            rx.foreach(S.tool_names, _tool_choice),
            role="group",
            aria_labelledby="agent-tools-label",
            aria_describedby="agent-tools-message",
            spacing="4",
            wrap="wrap",
        ),
        rx.cond(
            _error("tools") != "",
            rx.text(_error("tools"), size="2", color_scheme="red", role="alert", id="agent-tools-message"),
            rx.text(
                "The agent may call only the tools ticked here.",
                size="1",
                color_scheme="gray",
                id="agent-tools-message",
            ),
        ),
        spacing="1",
        width="100%",
    )


def _form() -> rx.Component:
    return rx.form(
        rx.vstack(
            rx.box(error_callout(S.form_error), id="agent-form-message", width="100%"),
            rx.grid(
                _input("Name", "name", hint="Shown in lists and in the playground."),
                _input(
                    "Slug",
                    "slug",
                    hint="Lower-case letters, digits and dashes; unique in this workspace.",
                    spell_check=False,
                ),
                columns=rx.breakpoints(initial="1", sm="2"),
                spacing="3",
                width="100%",
            ),
            _input("Description", "description", hint="One sentence on what the agent is for (optional)."),
            _input(
                "Model",
                "model",
                hint=MODEL_HINT,
                spell_check=False,
            ),
            _input(
                "Fallback models",
                "fallbacks",
                hint="Tried in order if the model fails; separate them with commas (optional).",
                spell_check=False,
            ),
            _field(
                "System prompt",
                "system_prompt",
                rx.text_area(
                    id="agent-system_prompt",
                    name="system_prompt",
                    default_value=S.form_values.get("system_prompt", ""),
                    rows="8",
                    resize="vertical",
                    width="100%",
                    **_invalid("system_prompt"),
                ),
                hint="The agent's instructions.",
            ),
            rx.grid(
                _input("Temperature", "temperature", type="number", step="0.1", hint="0 to 2; lower is steadier."),
                _input(
                    "Max tokens", "max_tokens", type="number", step="1", hint=f"1 to {MAX_TOKENS_LIMIT:,} per answer."
                ),
                _field(
                    "Maturity",
                    "maturity",
                    rx.select(
                        list(LEVELS),
                        id="agent-maturity",
                        name="maturity",
                        default_value=S.form_values.get("maturity", LEVELS[0]),
                        width="100%",
                    ),
                ),
                columns=rx.breakpoints(initial="1", sm="3"),
                spacing="3",
                width="100%",
            ),
            _tools(),
            rx.el.label(
                rx.hstack(
                    rx.switch(name="memory_enabled", default_checked=S.form_memory, id="agent-memory_enabled"),
                    rx.text("Memory: remember past conversations and recall them when relevant", size="2"),
                    align="center",
                    spacing="2",
                ),
            ),
            rx.cond(
                _error("memory_enabled") != "",
                rx.text(_error("memory_enabled"), size="2", color_scheme="red", role="alert"),
            ),
            dialog_buttons(
                rx.button(rx.cond(S.editing, "Save changes", "Create agent"), type="submit", loading=S.saving)
            ),
            spacing="4",
            width="100%",
        ),
        on_submit=S.save,
        key=S.form_key,
        width="100%",
    )


def agent_form_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            dialog_header(rx.cond(S.editing, "Edit agent", "Create agent"), margin_bottom="0.5rem"),
            rx.dialog.description(
                "Errors are shown next to the field they concern.", size="2", color_scheme="gray", margin_bottom="1rem"
            ),
            _form(),
            max_width="44rem",
            data_testid="agent-form",
        ),
        open=S.form_open,
        on_open_change=S.set_form_open,
    )
