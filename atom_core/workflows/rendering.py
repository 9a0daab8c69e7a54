"""Rendering templates inside workflow transitions without ever stalling the server.

A transition (`engine.transact`) is synchronous code holding the run's lock, on the event loop
(PostgreSQL, through SQLAlchemy's greenlet) or on the SQLite thread that every workflow write
shares. A template there renders inline only when it is provably cheap: loop-free by its syntax
(`templates.inline`) and within INLINE_WORK_MAX units of work on this data (a few ms). Anything
else is rendered by a worker process (`render_pool`), outside the transaction: the transition
raises `Elsewhere` with what it needs, `transact` rolls it back, awaits the renders, and runs it
again with their outcomes at hand (`Prepared`). A transition is pure database work, so running it
again is safe; the templates' inputs are the outputs of finished steps, so the second run asks for
the same renders and finds them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from atom_core.workflows import render_pool, render_worker, templates
from atom_core.workflows.templates import TemplateError

ROUNDS_MAX = 16  # runs of one transition that may ask for renders (each round renders all it asked for)


class Elsewhere(Exception):
    """The transition needs these request frames rendered by a worker first. Never a TemplateError:
    transitions catch those."""

    def __init__(self, requests: list[bytes]) -> None:
        super().__init__(f"{len(requests)} template(s) to render in a worker")
        self.requests = requests


@dataclass
class Prepared:
    """Outcomes of the renders done for one transition, by request frame."""

    outcomes: dict[bytes, dict[str, Any]] = field(default_factory=dict)
    rounds: int = 0
    missing: list[bytes] | None = None  # while `batch` collects

    @contextmanager
    def active(self) -> Iterator[None]:
        token = _prepared.set(self)
        try:
            yield
        finally:
            _prepared.reset(token)

    async def fill(self, needed: Elsewhere) -> None:
        """Render what the transition asked for, all at once (the pool runs a few at a time). The
        first failure is enough: the transition will fail on it, so the others are given up."""
        self.rounds += 1
        pool = render_pool.get_pool()
        todo = [request for request in dict.fromkeys(needed.requests) if request not in self.outcomes]
        tasks = [asyncio.ensure_future(_ask(pool, request)) for request in todo]
        try:
            for next_reply in asyncio.as_completed(tasks):
                if "error" in await next_reply:
                    break
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for request, task in zip(todo, tasks, strict=True):
            if not task.cancelled() and task.exception() is None:
                self.outcomes[request] = task.result()


async def _ask(pool: render_pool.RenderPool, request: bytes) -> dict[str, Any]:
    try:
        return await pool.ask(request)
    except TemplateError as exc:  # out of time or memory: this template's outcome
        return {"error": exc.message}


_prepared: ContextVar[Prepared | None] = ContextVar("atom_prepared_renders", default=None)


def render(text: str, context: Mapping[str, Any]) -> str:
    """`templates.render`, safe to call in a transition."""
    if templates.inline(text):
        try:
            return templates.render(text, context, limit=templates.INLINE_WORK_MAX)
        except templates.Overspent:
            pass
    return _outcome("render", text, context, "")


def evaluate(expression: str, context: Mapping[str, Any]) -> Any:
    """`templates.evaluate`, safe to call in a transition."""
    if templates.inline(expression, expression=True):
        try:
            return templates.evaluate(expression, context, limit=templates.INLINE_WORK_MAX)
        except templates.Overspent:
            pass
    return _outcome("evaluate", expression, context, None)


@contextmanager
def batch() -> Iterator[None]:
    """Renders inside ask for their workers together: one that needs a worker gives a placeholder,
    and the block ends with one `Elsewhere` for all of them. For results that decide nothing before
    the block ends (a map step's item inputs, a tool's arguments)."""
    prepared = _prepared.get()
    if prepared is None or prepared.missing is not None:
        yield
        return
    prepared.missing = []
    try:
        yield
        missing = prepared.missing
    finally:
        prepared.missing = None
    if missing:
        raise Elsewhere(missing)


def _outcome(kind: str, text: str, context: Mapping[str, Any], placeholder: Any) -> Any:
    prepared = _prepared.get()
    if prepared is None:
        raise RuntimeError("a template that needs a render worker, outside engine.transact")
    try:
        request = render_worker.frame({"kind": kind, "text": text, "context": context})
    except Exception as exc:  # e.g. an undefined value in a map item: the template's error, not a crash
        raise TemplateError(f"cannot render with this data: {(str(exc).splitlines() or [''])[0][:200]}") from None
    outcome = prepared.outcomes.get(request)
    if outcome is None:
        if prepared.rounds >= ROUNDS_MAX:
            raise TemplateError("the template's data kept changing while it was rendered; try again")
        if prepared.missing is not None:
            prepared.missing.append(request)
            return placeholder
        raise Elsewhere([request])
    if "error" in outcome:
        raise TemplateError(outcome["error"])
    return outcome["value"]
