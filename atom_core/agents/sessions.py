"""An agent's chat sessions, read back from its runs (for the dashboard's playground).

A session is the set of runs that share a `session_id`. Both functions read a
bounded number of rows: the recent-sessions list looks at the agent's newest
RECENT_RUNS_SCAN runs only, and a transcript at its newest runs only.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import select

from atom_core.agents.runs import AgentRun
from atom_core.agents.runtime import SESSION_RE
from atom_core.context import Ctx
from atom_core.db import session_scope
from atom_core.db.pagination import check_limit
from atom_core.errors import Invalid
from atom_core.tenancy import permissions

RECENT_RUNS_SCAN = 500
TITLE_CHARS = 120


@dataclass(frozen=True)
class SessionSummary:
    session_id: str
    title: str  # the start of the session's first input (among the runs scanned)
    runs: int
    started_at: datetime
    last_at: datetime


async def recent_sessions(ctx: Ctx, agent_id: uuid.UUID, *, limit: int = 10) -> list[SessionSummary]:
    """The agent's sessions, most recently active first."""
    permissions.require(ctx, "agents.read")
    check_limit(limit)
    query = (
        select(AgentRun.session_id, AgentRun.created_at, sa.func.substr(AgentRun.input, 1, TITLE_CHARS))
        .where(AgentRun.tenant_id == ctx.tenant_id, AgentRun.agent_id == agent_id)
        .order_by(AgentRun.created_at.desc(), AgentRun.id.desc())
        .limit(RECENT_RUNS_SCAN)
    )
    async with session_scope(ctx, readonly=True) as session:
        rows = (await session.exec(query)).all()
    found: dict[str, dict] = {}
    for session_id, created_at, title in rows:  # newest first
        entry = found.setdefault(session_id, {"runs": 0, "last_at": created_at})
        entry["runs"] += 1
        entry["started_at"], entry["title"] = created_at, title or ""
    return [
        SessionSummary(session_id, e["title"], e["runs"], e["started_at"], e["last_at"])
        for session_id, e in list(found.items())[:limit]
    ]


async def session_runs(ctx: Ctx, agent_id: uuid.UUID, session_id: str, *, limit: int = 20) -> list[AgentRun]:
    """The session's newest `limit` runs, oldest first (a transcript to show)."""
    permissions.require(ctx, "agents.read")
    check_limit(limit)
    if not isinstance(session_id, str) or not SESSION_RE.match(session_id):
        raise Invalid("session_id must be 1-64 letters, digits, '.', '_', ':' or '-'", field="session_id")
    query = (
        select(AgentRun)
        .where(AgentRun.tenant_id == ctx.tenant_id, AgentRun.agent_id == agent_id, AgentRun.session_id == session_id)
        .order_by(AgentRun.created_at.desc(), AgentRun.id.desc())
        .limit(limit)
    )
    async with session_scope(ctx, readonly=True) as session:
        return list(reversed((await session.exec(query)).all()))
