"""A run's events: each to the requester (SSE, CLI) as it happens, and to the
event bus for dashboards on any node.

The requester sees every token. The bus gets tokens coalesced into one
`token` event per TOKEN_BATCH_S or TOKEN_BATCH_MAX tokens, whichever comes
first (`chunks` says how many), so a 500-token answer costs about ten
publishes (Redis round trips), not 500. Pending tokens are published before
any other event, so a bus subscriber reads the run in order: `run.started`,
`token`…, `tool.started`, `tool.finished`, …, `run.finished` | `run.failed`;
the texts of the `token` events add up to the answer. A run whose requester
does not read tokens is not streamed from the model: its answer comes in one
`token` event.

The bus is best effort, as for workflow events: a lost publish is logged and
never fails the run (the requester and the run's record still get everything).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from atom_core.context import Ctx
from atom_core.infra import events

logger = logging.getLogger(__name__)
EventSink = Callable[[dict[str, Any]], Awaitable[None]]
TOKEN_BATCH_S = 0.05
TOKEN_BATCH_MAX = 64


def topic(run_id: uuid.UUID | str) -> str:
    """The bus topic of one run's events (under its tenant's channel prefix)."""
    return f"agent-runs:{run_id}"


class RunEvents:
    """`await emit("tool.started", name=…)` sends one event of the run."""

    def __init__(self, ctx: Ctx, run_id: uuid.UUID, sink: EventSink | None) -> None:
        self._run_id, self._sink = str(run_id), sink
        self._bus, self._channel = events.get_bus(), events.channel(ctx.tenant_id, topic(run_id))
        self._tokens: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._order = asyncio.Lock()  # a timed flush and the next event must not overtake each other
        self._flushes: set[asyncio.Task] = set()  # strong references until they finish

    async def __call__(self, kind: str, **data: Any) -> None:
        event = {"type": kind, "run_id": self._run_id, **data}
        if self._sink:
            await self._sink(event)
        if kind == "token":
            await self._add_token(data["text"])
            return
        async with self._order:
            await self._publish_tokens()
            await self._publish(event)

    @property
    def wants_tokens(self) -> bool:
        """Whether anyone reads tokens as they come (the bus is happy with the whole text)."""
        return self._sink is not None

    async def token(self, text: str) -> None:
        """A token sink for the gateway."""
        await self("token", text=text)

    async def _add_token(self, text: str) -> None:
        self._tokens.append(text)
        if len(self._tokens) >= TOKEN_BATCH_MAX:
            async with self._order:
                await self._publish_tokens()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(TOKEN_BATCH_S, self._flush_later)

    def _flush_later(self) -> None:
        task = asyncio.create_task(self._flush())
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self) -> None:
        async with self._order:
            await self._publish_tokens()

    async def _publish_tokens(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._tokens:
            return
        text, count = "".join(self._tokens), len(self._tokens)
        self._tokens = []
        await self._publish({"type": "token", "run_id": self._run_id, "text": text, "chunks": count})

    async def _publish(self, event: dict[str, Any]) -> None:
        try:
            await self._bus.publish(self._channel, event)
        except Exception as exc:  # the type only: a connection error's text may name the server
            logger.warning("could not publish agent run event %s (%s)", event["type"], type(exc).__name__)
