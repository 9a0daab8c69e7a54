"""Spans collected in memory during a run and written once when it ends.

Writing at the end keeps the hot path free of database round trips; the
runtime persists `recorder.spans` in the run's final transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

KINDS = frozenset({"run", "llm.call", "tool.call", "memory.recall"})


@dataclass
class Span:
    kind: str
    name: str
    parent_id: uuid.UUID | None = None
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    ended_at: datetime | None = None
    status: str = "running"  # running | ok | error
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_micros: int = 0
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_ms(self) -> int:
        if self.ended_at is None:
            return 0
        return int((self.ended_at - self.started_at).total_seconds() * 1000)


class TraceRecorder:
    def __init__(self, trace_id: uuid.UUID | None = None):
        self.trace_id = trace_id or uuid.uuid4()
        self.spans: list[Span] = []

    def start(self, kind: str, name: str, parent: Span | None = None, **attributes: Any) -> Span:
        assert kind in KINDS, kind
        span = Span(kind=kind, name=name, parent_id=parent.id if parent else None, attributes=attributes)
        self.spans.append(span)
        return span

    @staticmethod
    def end(span: Span, *, error: str | None = None, **fields: Any) -> Span:
        span.ended_at = datetime.now(UTC)
        span.status = "error" if error else "ok"
        span.error = error
        for name, value in fields.items():
            if hasattr(span, name) and name != "attributes":
                setattr(span, name, value)
            else:
                span.attributes[name] = value
        return span
