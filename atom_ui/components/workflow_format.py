"""Plain-text views of workflow data for the workflows and runs pages:
durations, truncated outputs and specs as YAML (times and one-line previews are
in `formatting`). No Reflex here."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import yaml

from atom_ui.components.formatting import PREVIEW_CHARS

FULL_CHARS = 20_000  # one step's output, shown when the user opens it
# The previews of a run's steps together stay under this many characters in the page state.
PREVIEWS_BUDGET = 12_000


def duration(start: datetime | None, end: datetime | None, *, now: datetime | None = None) -> str:
    """`1.2 s`, `3 min 04 s`, `2 h 05 min`; "" when it has not started."""
    if start is None:
        return ""
    seconds = max(0.0, ((end or now or datetime.now(UTC)) - start).total_seconds())
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def as_text(value: Any) -> str:
    """A step's input or output as text: strings as they are, anything else as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return text[:limit].rstrip() + f"… ({len(text) - limit:,} more characters)"


def preview_budget(count: int, *, total: int = PREVIEWS_BUDGET, cap: int = PREVIEW_CHARS) -> int:
    """Characters each of `count` previews may have so that together they fit `total`."""
    return max(40, min(cap, total // max(count, 1)))


def spec_yaml(spec: dict[str, Any]) -> str:
    """A stored spec as YAML for the editor, fields in the spec's own order."""
    return yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=1000, default_flow_style=False)


def short_id(value: Any) -> str:
    return str(value)[:8]
