"""Cancelling an agent run on whichever node executes it.

A cancel request is published on the run's tenant's channel
(`atom:{tenant_id}:events:agent-runs:cancel`). Each process holds ONE
listener on that channel for every tenant (a glob pattern): started when the
process first runs an agent, it cancels the run's task if the run executes
here. One subscription per process, not a Redis connection per run.

A request only cancels a run of the tenant whose channel carried it, so a
run id from another tenant does nothing. A process runs its agents on one
event loop (the server's, a worker's, a CLI command's).

The process that cancels the run answers on `agent-runs:cancel-ack`. No
answer within `ACK_WAIT_S` means no live process runs it (the one that did
died): the requester then records the run as cancelled itself (`request`
returns False).

A cancel request ends the run's block with `RunCancelled`, so the run records
itself and its requester still gets an answer; any other cancellation of the
task (its caller went away, the process stops) stays a `CancelledError`, which
the run re-raises once it has recorded itself.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from atom_core.context import Ctx
from atom_core.infra import events
from atom_core.infra.redis import get_redis

log = logging.getLogger(__name__)
TOPIC = "agent-runs:cancel"
ACK_TOPIC = "agent-runs:cancel-ack"
ACK_WAIT_S = 2.0
_acks: set[asyncio.Task] = set()  # strong references until they are sent


class RunCancelled(Exception):
    """A cancel request for the run ended its `running` block."""


@dataclass
class _Running:
    tenant_id: str
    task: asyncio.Task
    requested: bool = False  # a cancel request cancelled the task


_running: dict[uuid.UUID, _Running] = {}  # run id -> the task running it here


@contextmanager
def running(ctx: Ctx, run_id: uuid.UUID) -> Iterator[None]:
    """Mark the current task as the one executing `run_id` in this process.

    The cancellation a cancel request causes leaves the block as `RunCancelled`
    (as `asyncio.timeout` turns its own into TimeoutError); any other stays a
    CancelledError."""
    task = asyncio.current_task()
    assert task is not None
    entry = _Running(str(ctx.tenant_id), task)
    _running[run_id] = entry
    before = task.cancelling()
    try:
        yield
    except asyncio.CancelledError:
        if entry.requested and task.uncancel() <= before:
            raise RunCancelled() from None
        raise
    finally:
        _running.pop(run_id, None)


def cancel_here(tenant_id: object, run_id: uuid.UUID) -> bool:
    """Cancel the run if this process executes it for that tenant."""
    entry = _running.get(run_id)
    if entry is None or entry.tenant_id != str(tenant_id):
        return False
    if not entry.requested and not entry.task.cancelling():  # a second cancel would interrupt the recording
        entry.requested = True
        entry.task.cancel()
    return True


async def request(ctx: Ctx, run_id: uuid.UUID) -> bool:
    """Ask every node to cancel the run; the one executing it does and says so.
    False when no process answered within ACK_WAIT_S: none runs it any more."""
    bus, wanted = events.get_bus(), str(run_id)
    async with bus.listen(events.channel(ctx.tenant_id, ACK_TOPIC)) as acks:
        await bus.publish(events.channel(ctx.tenant_id, TOPIC), {"run_id": wanted})
        try:
            async with asyncio.timeout(ACK_WAIT_S):
                async for event in acks:
                    if event.get("run_id") == wanted:
                        return True
        except TimeoutError:
            pass
    return False


# --- the process's listener ----------------------------------------------------------------


@dataclass
class _Listener:
    loop: asyncio.AbstractEventLoop
    client: Any  # the Redis client it listens through (None: the in-process bus)
    task: asyncio.Task
    ready: asyncio.Future


_listener: _Listener | None = None


async def ensure_listening() -> None:
    """Start this process's listener if it is not running, and wait until it is subscribed.

    Restarted when it has stopped (a lost Redis connection) or the process
    switched to another event loop or Redis client (CLI commands, tests).
    A failure is logged, not raised: the run can still be cancelled on this node.
    """
    global _listener
    loop, client = asyncio.get_running_loop(), get_redis()
    current = _listener
    if current is None or current.task.done() or current.loop is not loop or current.client is not client:
        if current is not None and current.loop is loop:
            current.task.cancel()
        ready = loop.create_future()
        current = _listener = _Listener(loop, client, asyncio.create_task(_listen(ready)), ready)
    try:
        await asyncio.shield(current.ready)
    except Exception as exc:
        log.warning("cross-node cancellation unavailable (%s); runs here can still be cancelled here", exc)


async def _listen(ready: asyncio.Future) -> None:
    try:
        async with events.get_bus().listen_pattern(events.channel("*", TOPIC)) as requests:
            ready.set_result(None)
            async for channel, event in requests:
                _on_request(channel, event)
    except Exception as exc:  # the type only: a connection error's text may name the server
        log.warning("the cancellation listener stopped (%s); the next run restarts it", type(exc).__name__)
    finally:
        if not ready.done():  # the runs waiting for it go on without it
            ready.set_exception(ConnectionError("could not subscribe to cancel requests"))


def _on_request(channel: str, event: dict[str, Any]) -> None:
    try:
        run_id = uuid.UUID(str(event.get("run_id")))
    except ValueError:
        return
    tenant_id = events.tenant_of(channel)
    if cancel_here(tenant_id, run_id):
        task = asyncio.create_task(_acknowledge(tenant_id, run_id))
        _acks.add(task)
        task.add_done_callback(_acks.discard)


async def _acknowledge(tenant_id: str, run_id: uuid.UUID) -> None:
    try:
        await events.get_bus().publish(events.channel(tenant_id, ACK_TOPIC), {"run_id": str(run_id)})
    except Exception as exc:  # the requester then marks the run cancelled itself, which this run also ends as
        log.warning("could not acknowledge a cancel request (%s)", type(exc).__name__)
