"""Writes of agent runs, committed in groups.

Under load, many runs start and finish at the same moment, and every write
transaction has a fixed price whatever it holds: a pooled connection, BEGIN,
COMMIT with its fsync and, on SQLite, the single write lock, held across
awaits that each wait a turn of a busy event loop. So concurrent writes of
one tenant share a transaction (one per tenant: row-level security sets the
tenant per transaction). Nothing is weakened: a write returns only once the
transaction holding it has committed; a group that fails is retried one
write at a time, so a bad write fails alone.

While a group commits, the next one gathers; with one write in flight a
write commits at once, as before (no timers, no added latency).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import update
from sqlmodel import SQLModel

from atom_core.context import Ctx
from atom_core.db import session_scope

MAX_GROUP = 200  # writes per transaction: bounds its size and the time the SQLite lock is held


@dataclass
class Write:
    """Rows to insert and rows to update (by primary key), committed together."""

    add: Sequence[SQLModel] = ()
    update: tuple[type[SQLModel], dict[str, Any]] | None = None  # (model, values with the primary key)


@dataclass
class _Pending:
    ctx: Ctx
    write: Write
    done: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


# Per event loop and tenant: a future can only be settled from its own loop.
_Key = tuple[asyncio.AbstractEventLoop, uuid.UUID]
_queues: dict[_Key, list[_Pending]] = defaultdict(list)
_committers: dict[_Key, asyncio.Task] = {}


async def commit(ctx: Ctx, write: Write) -> None:
    """Commit `write` in the tenant's next transaction; return when it is committed.

    Cancelling the caller does not cancel the write (it may share a transaction
    with others): it still commits.
    """
    key = (asyncio.get_running_loop(), ctx.tenant_id)
    pending = _Pending(ctx, write)
    _queues[key].append(pending)
    if key not in _committers:
        _committers[key] = asyncio.create_task(_commit_queue(key))
    await asyncio.shield(pending.done)


async def _commit_queue(key: _Key) -> None:
    group: list[_Pending] = []
    try:
        while queue := _queues.pop(key, None):
            group, rest = queue[:MAX_GROUP], queue[MAX_GROUP:]
            if rest:
                _queues[key] = rest
            await _commit_group(group)
            group = []
    finally:
        del _committers[key]
        for pending in [*group, *_queues.pop(key, [])]:  # only if this task itself was cancelled
            pending.done.cancel()


async def _commit_group(group: list[_Pending]) -> None:
    try:
        async with session_scope(group[0].ctx) as session:
            session.add_all([row for pending in group for row in pending.write.add])
            await session.flush()  # inserts first: an update may follow a row added in the same group
            for model, rows in _updates(group).items():
                await session.exec(update(model), params=rows)  # one executemany per model
    except Exception as exc:
        if len(group) == 1:
            _settle(group[0], exc)
            return
        for pending in group:  # one bad write must not fail the others
            await _commit_group([pending])
        return
    for pending in group:
        _settle(pending, None)


def _updates(group: list[_Pending]) -> dict[type[SQLModel], list[dict[str, Any]]]:
    rows: dict[type[SQLModel], list[dict[str, Any]]] = defaultdict(list)
    for pending in group:
        if pending.write.update:
            model, values = pending.write.update
            rows[model].append(values)
    return rows


def _settle(pending: _Pending, error: BaseException | None) -> None:
    if pending.done.done():
        return
    if error is None:
        pending.done.set_result(None)
    else:
        pending.done.set_exception(error)
