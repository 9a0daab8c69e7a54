"""The policy interface the runtime asks before an agent acts.

The default allows by role; the governance issue plugs maturity rules,
guardrails and budgets in behind the same call.
"""

from __future__ import annotations

from typing import Protocol

from atom_core.agents.models import Agent
from atom_core.context import Ctx
from atom_core.tenancy import permissions


class Policy(Protocol):
    async def check_run(self, ctx: Ctx, agent: Agent) -> None: ...


class RolePolicy:
    async def check_run(self, ctx: Ctx, agent: Agent) -> None:
        permissions.require(ctx, "agents.run")


_policy: Policy = RolePolicy()


def get_policy() -> Policy:
    return _policy
