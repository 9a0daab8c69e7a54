"""The memory interface the runtime calls. A no-op until the world-model issue
gives it a LanceDB store; the runtime already records a span for it."""

from __future__ import annotations

from atom_core.agents.models import Agent
from atom_core.context import Ctx


async def recall(ctx: Ctx, agent: Agent, query: str, k: int = 5) -> list[str]:
    return []
