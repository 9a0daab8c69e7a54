"""The event bus: run and step events for dashboards and streams.

Embedded mode fans out in process; server mode uses Redis pub/sub so a
dashboard on one node sees runs executing on another. Channels carry the
tenant (`atom:{tenant_id}:events:{topic}`), so a subscriber never receives
another tenant's events.

`listen(channel)` and `listen_pattern(pattern)` are context managers that
return only once the subscription is in place: an event published after
they return is never missed. A pattern is a glob over channel names
(`atom:*:events:x`) and yields `(channel, event)` pairs, so a process-wide
listener can still tell which tenant an event belongs to.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from fnmatch import fnmatchcase
from typing import Any

from atom_core.infra.redis import get_redis, tenant_key, unavailable_as

Event = dict[str, Any]
SUBSCRIBE_TIMEOUT_S = 10.0
SERVICE = "event"  # how an outage names this service: "the event service (Redis) is unavailable"


class MemoryBus:
    def __init__(self) -> None:
        self._channels: dict[str, set[asyncio.Queue]] = defaultdict(set)
        self._patterns: dict[str, set[asyncio.Queue]] = defaultdict(set)

    async def publish(self, channel: str, event: Event) -> None:
        listeners = [*self._channels.get(channel, ())]
        for pattern, queues in list(self._patterns.items()):
            if fnmatchcase(channel, pattern):
                listeners += queues
        for queue in listeners:
            queue.put_nowait((channel, event))

    def listen(self, channel: str) -> AbstractAsyncContextManager[AsyncIterator[Event]]:
        return _events_only(self._listen(self._channels, channel))

    def listen_pattern(self, pattern: str) -> AbstractAsyncContextManager[AsyncIterator[tuple[str, Event]]]:
        return self._listen(self._patterns, pattern)

    async def subscribe(self, channel: str) -> AsyncIterator[Event]:
        async with self.listen(channel) as received:
            async for event in received:
                yield event

    @asynccontextmanager
    async def _listen(self, table: dict[str, set[asyncio.Queue]], name: str) -> AsyncIterator[AsyncIterator]:
        queue: asyncio.Queue = asyncio.Queue()
        table[name].add(queue)
        try:
            yield _drain(queue)
        finally:
            table[name].discard(queue)
            if not table[name]:
                del table[name]


async def _drain(queue: asyncio.Queue) -> AsyncIterator[tuple[str, Event]]:
    while True:
        yield await queue.get()


class RedisBus:
    async def publish(self, channel: str, event: Event) -> None:
        client = get_redis()
        assert client is not None
        async with unavailable_as(SERVICE):
            await client.publish(channel, json.dumps(event, default=str))

    def listen(self, channel: str) -> AbstractAsyncContextManager[AsyncIterator[Event]]:
        return _events_only(self._listen(channel, pattern=False))

    def listen_pattern(self, pattern: str) -> AbstractAsyncContextManager[AsyncIterator[tuple[str, Event]]]:
        return self._listen(pattern, pattern=True)

    async def subscribe(self, channel: str) -> AsyncIterator[Event]:
        async with self.listen(channel) as received:
            async for event in received:
                yield event

    @asynccontextmanager
    async def _listen(self, name: str, *, pattern: bool) -> AsyncIterator[AsyncIterator[tuple[str, Event]]]:
        client = get_redis()
        assert client is not None
        pubsub = client.pubsub()  # its own connection: a subscribed connection can do nothing else
        try:
            async with unavailable_as(SERVICE):
                await (pubsub.psubscribe if pattern else pubsub.subscribe)(name)
                await _confirmed(pubsub)
            yield _redis_messages(pubsub)
        finally:
            await pubsub.aclose()


async def _confirmed(pubsub: Any) -> None:
    """Wait for Redis's reply to the subscription: only from then on does it deliver to us."""
    async with asyncio.timeout(SUBSCRIBE_TIMEOUT_S):
        while True:
            message = await pubsub.get_message(timeout=SUBSCRIBE_TIMEOUT_S)
            if message and message["type"] in ("subscribe", "psubscribe"):
                return


async def _redis_messages(pubsub: Any) -> AsyncIterator[tuple[str, Event]]:
    async for message in pubsub.listen():
        if message.get("type") in ("message", "pmessage"):
            yield message["channel"], json.loads(message["data"])


@asynccontextmanager
async def _events_only(
    listening: AbstractAsyncContextManager[AsyncIterator[tuple[str, Event]]],
) -> AsyncIterator[AsyncIterator[Event]]:
    async def events(pairs: AsyncIterator[tuple[str, Event]]) -> AsyncIterator[Event]:
        async for _, event in pairs:
            yield event

    async with listening as pairs:
        yield events(pairs)


_memory_bus = MemoryBus()


def channel(tenant_id: object, topic: str) -> str:
    return tenant_key(tenant_id, "events", topic)


def tenant_of(channel_name: str) -> str:
    """The tenant id a channel belongs to (`atom:{tenant_id}:events:…`)."""
    return channel_name.split(":", 2)[1]


def get_bus() -> MemoryBus | RedisBus:
    return RedisBus() if get_redis() is not None else _memory_bus
