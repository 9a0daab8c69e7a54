"""A workflow's step graph as React Flow nodes and edges, laid out in Python.

Steps are placed in columns by topological depth (a step sits one column to
the right of its deepest dependency) and stacked in spec order inside a
column, so no layout library is needed in the browser. The layout tolerates
the specs the editor sees while the user types: unknown dependencies are
ignored and a dependency cycle does not loop forever.

Colours are Radix theme variables in a small stylesheet keyed on class names
(`stylesheet()`), so the graph follows light and dark mode and a node in the
page state is just its id, position, label and classes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

COLUMN_GAP = 240
ROW_GAP = 96
NODE_WIDTH = 180
# Top to bottom (a tall, narrow panel such as the editor's): layers are rows.
LAYER_GAP_TB = 110
SIBLING_GAP_TB = NODE_WIDTH + 40

# Step statuses (atom_core.workflows.models) -> Radix colour scale (background 3, border 9, text 12).
STEP_STATUS_COLORS: dict[str, str] = {
    "pending": "gray",
    "running": "blue",
    "waiting": "amber",
    "succeeded": "green",
    "failed": "red",
    "skipped": "gray",
    "cancelled": "gray",
}
MUTED_STATUSES = frozenset({"skipped", "cancelled"})
# In the editor (no run yet) a node is coloured by its step type.
STEP_TYPE_COLORS: dict[str, str] = {
    "agent": "indigo",
    "tool": "teal",
    "approval": "amber",
    "condition": "violet",
    "map": "cyan",
}


@dataclass(frozen=True)
class StepNode:
    """What the graph needs to know about one step."""

    id: str
    type: str = "agent"
    detail: str = ""  # the agent or tool it uses
    depends_on: tuple[str, ...] = field(default_factory=tuple)
    index: int = 0  # position in the spec's steps list (validation errors name it)


def steps_from_spec(spec: Any) -> list[StepNode]:
    """The steps of a spec mapping, validated or not (what the user is typing).

    Entries that are not mappings are skipped; an entry without a usable id is
    named after its position; a repeated id is kept once (its first entry).
    """
    raw_steps = spec.get("steps") if isinstance(spec, Mapping) else None
    if not isinstance(raw_steps, list):
        return []
    found: list[StepNode] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_steps):
        if not isinstance(raw, Mapping):
            continue
        step_id = raw.get("id")
        step_id = step_id if isinstance(step_id, str) and step_id.strip() else f"steps[{index}]"
        if step_id in seen:
            continue
        seen.add(step_id)
        kind = raw.get("type") if isinstance(raw.get("type"), str) else "agent"
        detail = raw.get("agent") if kind in ("agent", "map") else raw.get("tool") if kind == "tool" else None
        deps = raw.get("depends_on")
        depends_on = tuple(d for d in deps if isinstance(d, str)) if isinstance(deps, list) else ()
        found.append(StepNode(step_id, kind, detail if isinstance(detail, str) else "", depends_on, index))
    return found


def depths(steps: Iterable[StepNode]) -> dict[str, int]:
    """Each step's column: 0 for a step without (known) dependencies, else one
    more than its deepest dependency. In a dependency cycle the first step in
    spec order is placed as if its unplaced dependencies were not there."""
    steps = list(steps)
    known = {s.id for s in steps}
    depends_on = {s.id: [d for d in s.depends_on if d in known and d != s.id] for s in steps}
    depth: dict[str, int] = {}
    remaining = [s.id for s in steps]
    while remaining:
        ready = [sid for sid in remaining if all(d in depth for d in depends_on[sid])] or remaining[:1]
        for sid in ready:
            depth[sid] = max((depth[d] + 1 for d in depends_on[sid] if d in depth), default=0)
        remaining = [sid for sid in remaining if sid not in depth]
    return depth


def positions(steps: Iterable[StepNode], direction: str = "LR") -> dict[str, tuple[int, int]]:
    """(x, y) of each step. "LR": layers are columns left to right, each centred on
    y=0; "TB": layers are rows top to bottom, each centred on x=0."""
    steps = list(steps)
    layer = depths(steps)
    members: dict[int, list[str]] = {}
    for step in steps:
        members.setdefault(layer[step.id], []).append(step.id)
    across, along = (ROW_GAP, COLUMN_GAP) if direction == "LR" else (SIBLING_GAP_TB, LAYER_GAP_TB)
    placed: dict[str, tuple[int, int]] = {}
    for depth, ids in members.items():
        first = -(len(ids) - 1) * across / 2
        for position, step_id in enumerate(ids):
            offset = int(first + position * across)
            placed[step_id] = (depth * along, offset) if direction == "LR" else (offset, depth * along)
    return placed


def _rule(selector: str, scale: str, *, muted: bool = False, strong: bool = True) -> str:
    background = f"var(--{scale}-{2 if muted else 3})"
    border = f"var(--{scale}-{9 if strong else 7})"
    color = "var(--gray-11)" if muted else f"var(--{scale}-12)"
    extra = "border-style:dashed;opacity:0.7;" if muted else ""
    return f"{selector}{{background:{background};border-color:{border};color:{color};{extra}}}"


def stylesheet() -> str:
    """The CSS of graph nodes, by class. Nodes carry only class names, so the
    graph in the page state stays small (200 steps of inline styles would not)."""
    node = ".react-flow__node.dag-node"
    rules = [
        f"{node}{{width:{NODE_WIDTH}px;font-size:12px;line-height:1.35;white-space:pre-line;"
        "border-radius:8px;border-width:2px;border-style:solid;padding:8px;box-shadow:none}",
        *(
            _rule(f"{node}.dag-status-{status}", scale, muted=status in MUTED_STATUSES, strong=status != "pending")
            for status, scale in STEP_STATUS_COLORS.items()
        ),
        *(_rule(f"{node}.dag-type-{kind}", scale, strong=False) for kind, scale in STEP_TYPE_COLORS.items()),
        f"{node}.dag-error{{border:3px solid var(--red-9)}}",
    ]
    return "\n".join(rules)


def _label(step: StepNode, status: str | None) -> str:
    kind = f"{step.type} · {step.detail}" if step.detail else step.type
    return f"{step.id}\n{kind}" + (f"\n{status}" if status else "")


def graph(
    steps: Iterable[StepNode],
    statuses: Mapping[str, str] | None = None,
    *,
    error_step: str | None = None,
    direction: str = "LR",
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """React Flow `nodes` and `edges`. With `statuses` (a run) nodes are coloured
    by step status and edges into a running step are animated; without, by step
    type. `error_step` is outlined in red (the step a validation error names).
    `direction` is "LR" (left to right) or "TB" (top to bottom)."""
    steps = list(steps)
    placed = positions(steps, direction)
    source, target = ("right", "left") if direction == "LR" else ("bottom", "top")
    known = {s.id for s in steps}
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    for step in steps:
        status = statuses.get(step.id, "pending") if statuses is not None else None
        if status is not None:
            css = f"dag-node dag-status-{status if status in STEP_STATUS_COLORS else 'pending'}"
        else:
            css = f"dag-node dag-type-{step.type if step.type in STEP_TYPE_COLORS else 'agent'}"
        if step.id == error_step:
            css += " dag-error"
        x, y = placed[step.id]
        nodes.append(
            {
                "id": step.id,
                "position": {"x": x, "y": y},
                "data": {"label": _label(step, status)},
                "className": css,
                "sourcePosition": source,
                "targetPosition": target,
            }
        )
        for dep in dict.fromkeys(step.depends_on):
            if dep in known and dep != step.id:
                edge = {"id": f"e{len(edges)}", "source": dep, "target": step.id}
                edges.append(edge | {"animated": True} if status == "running" else edge)
    return nodes, edges


def graph_key(steps: Iterable[StepNode]) -> str:
    """Changes when the graph's shape changes, so the view is re-fitted (used as a React key)."""
    shape = "|".join(f"{s.id}:{s.type}:{s.detail}<{','.join(s.depends_on)}" for s in steps)
    return hashlib.sha1(shape.encode(), usedforsecurity=False).hexdigest()[:16]


def error_step_id(field_path: str | None, steps: list[StepNode]) -> str | None:
    """The id of the step a validation error's field names (`spec.steps[2].depends_on` -> steps[2]'s id)."""
    if not field_path or not field_path.startswith("spec.steps["):
        return None
    index_text = field_path[len("spec.steps[") :].split("]", 1)[0]
    if not index_text.isdigit():
        return None
    index = int(index_text)
    return next((step.id for step in steps if step.index == index), None)
