"""The "Run workflow" dialog: one field per declared input, errors next to their field."""

from __future__ import annotations

import reflex as rx

from atom_ui.components.dialogs import dialog_buttons
from atom_ui.components.feedback import error_callout
from atom_ui.states.workflows import FREE_INPUT, InputField, WorkflowRunState

S = WorkflowRunState


def _field(field: InputField) -> rx.Component:
    error = S.field_errors.get(field.name, "")
    control_props = {
        "id": "run-input-" + field.name,
        "name": field.name,
        "width": "100%",
        "aria_invalid": rx.cond(error != "", "true", "false"),
        "aria_describedby": "run-input-" + field.name + "-message",
        "color_scheme": rx.cond(error != "", "red", "gray"),
    }
    return rx.vstack(
        rx.el.label(
            rx.hstack(
                rx.text(field.name, size="2", weight="medium"),
                rx.badge(field.kind, variant="surface", color_scheme="gray", size="1"),
                spacing="2",
                align="center",
            ),
            html_for="run-input-" + field.name,
        ),
        rx.cond(
            field.multiline,
            rx.text_area(rows="3", font_family="var(--code-font-family)", **control_props),
            rx.input(**control_props),
        ),
        rx.cond(
            error != "",
            rx.text(error, size="1", color_scheme="red", role="alert", id="run-input-" + field.name + "-message"),
            rx.text(field.hint, size="1", color_scheme="gray", id="run-input-" + field.name + "-message"),
        ),
        spacing="1",
        width="100%",
    )


def _free_form() -> rx.Component:
    error = S.field_errors.get(FREE_INPUT, "")
    return rx.vstack(
        rx.el.label(rx.text("Input (a JSON object, optional)", size="2", weight="medium"), html_for=FREE_INPUT),
        rx.text_area(
            id=FREE_INPUT,
            name=FREE_INPUT,
            rows="4",
            placeholder='{"topic": "solar power"}',
            font_family="var(--code-font-family)",
            width="100%",
            color_scheme=rx.cond(error != "", "red", "gray"),
        ),
        rx.cond(
            error != "",
            rx.text(error, size="1", color_scheme="red", role="alert"),
            rx.text("This workflow declares no inputs, so any object is accepted.", size="1", color_scheme="gray"),
        ),
        spacing="1",
        width="100%",
    )


def run_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Run ", rx.cond(S.workflow_name != "", S.workflow_name, "workflow")),
            rx.dialog.description(
                rx.cond(S.version > 0, "Version " + S.version.to_string() + ". ", ""),
                "The run starts at once; you follow it on its own page.",
                size="2",
                color_scheme="gray",
            ),
            rx.cond(
                S.loading,
                rx.center(rx.spinner(), padding="2rem"),
                rx.form(
                    rx.vstack(
                        error_callout(S.error),
                        rx.cond(S.free_form, _free_form(), rx.foreach(S.fields, _field)),
                        dialog_buttons(
                            rx.button(
                                rx.icon("play", size=16),
                                "Start run",
                                type="submit",
                                loading=S.starting,
                                disabled=S.workflow_key == "",
                            ),
                        ),
                        spacing="4",
                        width="100%",
                        padding_top="1rem",
                    ),
                    on_submit=S.start,
                    reset_on_submit=False,
                    width="100%",
                ),
            ),
            max_width="32rem",
        ),
        open=S.open,
        on_open_change=S.set_open,
    )
