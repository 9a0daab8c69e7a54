"""The event bus: run and step events for dashboards and streams.

Embedded mode fans out in process; server mode uses Redis pub/sub so a
dashboard on one node sees runs executing on another. Channels carry the
tenant (`atom:{tenant_id}:events:{topic}`), so a subscriber never receives
another tenant's events.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

from atom_core.infra.redis import get_redis, tenant_key


class MemoryBus:
    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue]] = defaultdict(set)

    async def publish(self, channel: str, event: dict[str, Any]) -> None:
        for queue in list(self._queues.get(channel, ())):
            queue.put_nowait(event)

    async def subscribe(self, channel: str) -> AsyncIterator[dict[str, Any]]:
        queue: asyncio.Queue = asyncio.Queue()
        self._queues[channel].add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._queues[channel].discard(queue)
            if not self._queues[channel]:
                del self._queues[channel]


class RedisBus:
    async def publish(self, channel: str, event: dict[str, Any]) -> None:
        client = get_redis()
        assert client is not None
        await client.publish(channel, json.dumps(event, default=str))

    async def subscribe(self, channel: str) -> AsyncIterator[dict[str, Any]]:
        client = get_redis()
        assert client is not None
        pubsub = client.pubsub()
        await pubsub.subscribe(channel)
        try:
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    yield json.loads(message["data"])
        finally:
            await pubsub.unsubscribe(channel)
            await pubsub.aclose()


_memory_bus = MemoryBus()


def channel(tenant_id: object, topic: str) -> str:
    return tenant_key(tenant_id, "events", topic)


def get_bus() -> MemoryBus | RedisBus:
    return RedisBus() if get_redis() is not None else _memory_bus
