"""Who runs the steps: an in-process asyncio executor (embedded mode, no
Redis), or Dramatiq workers (distributed mode; see `queue.py`). Both run the
same step function (`steps.execute_step`) and hand on what it returns. The
embedded executor also lets a finishing step claim its successors for it
(`engine.finish`), within its bound and the tenant's cap, so they start
without a claim transaction of their own; Dramatiq workers each claim what
they run.

A sweep finds steps no executor will deliver (a hand-off lost in a crash, a
worker that died holding a lease) and dispatches them again; a duplicate
delivery is harmless because only one claim of a step wins.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from contextlib import AsyncExitStack
from typing import Protocol

from atom_core.errors import RateLimited
from atom_core.settings import get_settings
from atom_core.workflows import engine, steps
from atom_core.workflows.engine import Claim, Dispatch

logger = logging.getLogger(__name__)


class Executor(Protocol):
    async def submit(self, dispatches: Iterable[Dispatch]) -> None: ...


class EmbeddedExecutor:
    """Steps as tasks on this process's event loop, at most `limit` at once."""

    def __init__(self, limit: int = 256) -> None:
        self._limit = limit
        self._gate = asyncio.Semaphore(limit)
        self._running = 0  # steps holding a place under the gate
        self._tasks: set[asyncio.Task] = set()
        self.loop = asyncio.get_running_loop()

    async def submit(self, dispatches: Iterable[Dispatch | Claim]) -> None:
        for item in dispatches:
            task = asyncio.create_task(self._run(item) if isinstance(item, Dispatch) else self._run_claimed(item))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def room(self) -> int:
        """How many more steps could start here now (the tenant's cap is checked as each starts)."""
        return self._limit - self._running

    async def _run(self, dispatch: Dispatch) -> None:
        if dispatch.delay_s > 0:
            await asyncio.sleep(dispatch.delay_s)
        try:
            async with self._gate:
                self._running += 1
                try:
                    following = await steps.execute_step(
                        dispatch.tenant_id, dispatch.run_id, dispatch.step_id, room=self.room
                    )
                finally:
                    self._running -= 1
        except Exception:  # e.g. the database went away: the sweep dispatches the step again
            logger.exception("workflow step %s of run %s could not run", dispatch.step_id, dispatch.run_id)
            return
        await self.submit(following)

    async def _run_claimed(self, claim: Claim) -> None:
        """A step a finishing step claimed for this executor: it starts at once if there
        is room for it (here and in the tenant's cap), else it is given back and queued."""
        try:
            room = await self._reserve(claim.run.tenant_id)
            if room is None:
                following: list[Dispatch | Claim] = list(await engine.release(claim))
            else:
                async with room:
                    following = await steps.run_claimed(claim, self.room)
        except Exception:  # its lease runs out and the sweep dispatches it again
            logger.exception("workflow step %s of run %s could not run", claim.step.id, claim.run.id)
            return
        await self.submit(following)

    async def _reserve(self, tenant_id: uuid.UUID) -> AsyncExitStack | None:
        """A place under this executor's bound (never waited for: a claimed step starts at
        once or not at all) and one of the tenant's slots, or None."""
        if self._gate.locked():
            return None
        room = AsyncExitStack()
        await self._gate.acquire()
        self._running += 1
        room.callback(self._gate.release)
        room.callback(self._leave)
        try:
            await room.enter_async_context(steps.step_slot(tenant_id))
        except BaseException as exc:  # at the cap, or no slot to be had (Redis down): give the place back
            await room.aclose()
            if not isinstance(exc, RateLimited):
                raise
            return None
        return room

    def _leave(self) -> None:
        self._running -= 1

    @property
    def busy(self) -> int:
        return len(self._tasks)

    async def idle(self) -> None:
        """Wait until no step is in flight or scheduled here (CLI runs, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


_embedded: EmbeddedExecutor | None = None


def embedded() -> EmbeddedExecutor:
    """This event loop's embedded executor."""
    global _embedded
    if _embedded is None or _embedded.loop is not asyncio.get_running_loop():
        _embedded = EmbeddedExecutor()
    return _embedded


def get_executor() -> Executor:
    if get_settings().executor == "distributed":
        from atom_core.workflows import queue  # needs Redis: imported only in distributed mode

        return queue.QueueExecutor()
    return embedded()


async def sweep(executor: Executor | None = None, *, grace_s: float | None = None) -> int:
    """Dispatch every orphaned step of every active run once; returns how many."""
    executor = executor or get_executor()
    grace = 2 * get_settings().workflow_lease_s if grace_s is None else grace_s
    by_tenant: dict[uuid.UUID, list[uuid.UUID]] = {}
    for tenant_id, run_id in await engine.active_runs():
        by_tenant.setdefault(tenant_id, []).append(run_id)
    found = 0
    for tenant_id, run_ids in by_tenant.items():  # one query per tenant, however many runs it has
        orphans = await engine.orphans_in(tenant_id, run_ids, grace)
        found += len(orphans)
        await executor.submit(orphans)
    return found


async def sweep_forever(executor: Executor | None = None) -> None:
    """The recovery loop a server or worker process runs in the background."""
    interval = get_settings().workflow_sweep_interval_s
    while True:
        try:
            found = await sweep(executor)
            if found:
                logger.info("workflow sweep re-dispatched %d step(s)", found)
        except Exception:
            logger.exception("workflow sweep failed; retrying in %.0f s", interval)
        await asyncio.sleep(interval)
