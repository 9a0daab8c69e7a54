"""The distributed executor: Dramatiq workers fed through their own Redis database.

Configured as measured in shared/ARCHITECTURE.md: a 10 s heartbeat timeout and
frequent queue maintenance, so a `kill -9`'d worker's unacknowledged steps are
redelivered in seconds; a connection pool larger than the worker threads; a
time limit above the longest step; Dramatiq's retries (with backoff, then its
dead-letter queue) only for failures outside a step (e.g. the database was
down), since a step's own retries are the engine's.

`dramatiq atom_core.workflows.queue` (what `atom worker` starts) imports this
module to find the broker and the actor.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable

import dramatiq
import redis
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import AsyncIO, Middleware

import atom_core.db.metadata  # noqa: F401 - every table, so foreign keys resolve in a bare worker
from atom_core.errors import AtomError
from atom_core.plugins import load_plugins
from atom_core.settings import get_settings
from atom_core.workflows import executors, steps
from atom_core.workflows.engine import Dispatch

logger = logging.getLogger(__name__)
QUEUE = "workflow-steps"
NAMESPACE = "atom"
HEARTBEAT_TIMEOUT_MS = 10_000
MAINTENANCE_CHANCE = 100_000  # per million broker commands: dead workers are noticed within seconds
POOL_CONNECTIONS = 512  # above ~256 threads a process, or the pool starves the workers
TIME_LIMIT_MS = (24 * 3600 + 600) * 1000  # above the longest allowed step timeout


class Sweeper(Middleware):
    """Each worker process runs the recovery sweep on its event loop."""

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        thread = get_event_loop_thread()
        if thread is not None:
            asyncio.run_coroutine_threadsafe(executors.sweep_forever(QueueExecutor()), thread.loop)


def build_broker(url: str) -> RedisBroker:
    pool = redis.ConnectionPool.from_url(url, max_connections=POOL_CONNECTIONS)
    broker = RedisBroker(
        client=redis.Redis(connection_pool=pool),
        namespace=NAMESPACE,
        heartbeat_timeout=HEARTBEAT_TIMEOUT_MS,
        maintenance_chance=MAINTENANCE_CHANCE,
    )
    broker.add_middleware(AsyncIO())
    broker.add_middleware(Sweeper())
    return broker


def _queue_url() -> str:
    url = get_settings().queue_url
    if not url:
        raise AtomError("the distributed executor needs ATOM_REDIS_URL (or ATOM_QUEUE_REDIS_URL)", field="executor")
    return url


broker = build_broker(_queue_url())
dramatiq.set_broker(broker)
load_plugins()  # the tools steps name must exist in the worker too


@dramatiq.actor(queue_name=QUEUE, max_retries=20, min_backoff=1_000, max_backoff=60_000, time_limit=TIME_LIMIT_MS)
async def run_step(tenant_id: str, run_id: str, step_id: str) -> None:
    following = await steps.execute_step(uuid.UUID(tenant_id), uuid.UUID(run_id), step_id)
    await QueueExecutor().submit(following)


class QueueExecutor:
    async def submit(self, dispatches: Iterable[Dispatch]) -> None:
        batch = list(dispatches)
        if batch:  # redis-py's client here is synchronous: keep it off the event loop
            await asyncio.to_thread(_send, batch)


def _send(batch: list[Dispatch]) -> None:
    for d in batch:
        run_step.send_with_options(
            args=(str(d.tenant_id), str(d.run_id), d.step_id), delay=int(d.delay_s * 1000) or None
        )


def dead_letters() -> int:
    """Messages Dramatiq gave up on (its dead-letter queue)."""
    return int(broker.client.zcard(f"{NAMESPACE}:{QUEUE}.XQ") or 0)


def queue_depth() -> dict[str, int]:
    client = broker.client
    return {
        "ready": int(client.llen(f"{NAMESPACE}:{QUEUE}") or 0),
        "delayed": int(client.llen(f"{NAMESPACE}:{QUEUE}.DQ") or 0),
        "dead": dead_letters(),
    }
