"""Agent maturity levels, lowest first. The governance issue attaches
permissions and graduation exams to them; for now they are validated labels."""

from __future__ import annotations

from atom_core.errors import Invalid

LEVELS = ("student", "intern", "supervised", "autonomous")
DEFAULT_LEVEL = "student"


def check_level(level: str, field: str = "maturity") -> str:
    if level not in LEVELS:
        raise Invalid(f"{field} must be one of: {', '.join(LEVELS)}", field=field)
    return level
