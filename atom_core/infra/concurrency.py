"""Per-tenant caps on work in flight (concurrent agent runs, workflow steps).

Each holder of a slot has its own entry with a deadline (a lease), renewed
by a heartbeat every third of the lease while the holder lives and removed
when it lets go. Every take first prunes the entries whose deadline passed,
so a holder that died (a killed process) stops counting within one lease,
however steady the traffic; a shared counter with an expiry never healed,
because every take pushed its expiry back.

Server mode keeps the entries in a Redis sorted set per (tenant, name)
(member: holder id, score: deadline by Redis's clock, one clock for every
node); a take is one Lua script, so pruning, counting and adding are one
round trip and atomic: the cap is never passed. Embedded mode keeps the same
entries in process.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from atom_core.errors import RateLimited, ServiceUnavailable
from atom_core.infra.redis import get_redis, tenant_key, unavailable_as
from atom_core.settings import get_settings

log = logging.getLogger(__name__)
SERVICE = "concurrency limit"

# KEYS[1]: the slots' set; ARGV: limit, holder, lease in ms. Adds the holder, or
# renews it, unless the others still alive fill the cap. 1 if it holds a slot.
HOLD_SCRIPT = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local lease_ms = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now_ms + lease_ms, ARGV[2])
redis.call('PEXPIRE', KEYS[1], lease_ms)
return 1
"""


class Slots:
    """Holders in this process, and the one task that renews them all every third of the lease
    (one task per store rather than one per slot: a slot costs a dict entry, not a task)."""

    def __init__(self) -> None:
        self._live: dict[tuple[str, str], tuple[int, float]] = {}  # (key, holder) -> (limit, lease)
        self._renewer: asyncio.Task | None = None
        self._period = 0.0

    async def hold(self, key: str, holder: str, limit: int, lease_s: float) -> bool:
        raise NotImplementedError

    async def release(self, key: str, holder: str) -> None:
        raise NotImplementedError

    async def renew(self, held: list[tuple[str, str, int, float]]) -> int:
        """Renew every (key, holder, limit, lease); how many could not be (lease lost, cap full)."""
        raise NotImplementedError

    def keep_alive(self, key: str, holder: str, limit: int, lease_s: float) -> None:
        self._live[(key, holder)] = (limit, lease_s)
        loop, renewer = asyncio.get_running_loop(), self._renewer
        if renewer is None or renewer.done() or renewer.get_loop() is not loop or lease_s / 3 < self._period:
            if renewer is not None and not renewer.done() and renewer.get_loop() is loop:
                renewer.cancel()  # it sleeps for a longer lease (the setting changed)
            self._period = lease_s / 3
            self._renewer = loop.create_task(self._renew_while_held())

    def let_go(self, key: str, holder: str) -> None:
        self._live.pop((key, holder), None)

    async def _renew_while_held(self) -> None:
        while self._live:
            await asyncio.sleep(self._period)
            held = [(key, holder, limit, lease) for (key, holder), (limit, lease) in self._live.items()]
            try:
                if held and await self.renew(held):
                    log.warning("a slot's lease ran out before it was renewed, and the cap is full")
            except ServiceUnavailable:  # a short outage: the next beat tries again
                log.warning("could not renew slots (Redis unavailable); retrying in %g s", self._period)


class RedisSlots(Slots):
    """Slots as a sorted set in Redis (server mode)."""

    def __init__(self, client: Any) -> None:
        super().__init__()
        self._client = client
        self._hold = client.register_script(HOLD_SCRIPT)

    async def hold(self, key: str, holder: str, limit: int, lease_s: float) -> bool:
        async with unavailable_as(SERVICE):
            return bool(await self._hold(keys=[key], args=[limit, holder, _ms(lease_s)]))

    async def release(self, key: str, holder: str) -> None:
        async with unavailable_as(SERVICE):
            await self._client.zrem(key, holder)

    async def renew(self, held: list[tuple[str, str, int, float]]) -> int:
        # One round trip for all.
        async with unavailable_as(SERVICE), self._client.pipeline(transaction=False) as pipe:
            for key, holder, limit, lease_s in held:
                await self._hold(keys=[key], args=[limit, holder, _ms(lease_s)], client=pipe)
            return sum(1 for kept in await pipe.execute() if not kept)


class LocalSlots(Slots):
    """The same entries in process (embedded mode)."""

    def __init__(self) -> None:
        super().__init__()
        self._held: dict[str, dict[str, float]] = defaultdict(dict)

    async def hold(self, key: str, holder: str, limit: int, lease_s: float) -> bool:
        now, entries = time.monotonic(), self._held[key]
        if holder not in entries and len(entries) >= limit:
            for other, deadline in list(entries.items()):  # only a full cap needs the expired ones gone
                if deadline <= now:
                    del entries[other]
            if len(entries) >= limit:
                return False
        entries[holder] = now + lease_s
        return True

    async def release(self, key: str, holder: str) -> None:
        entries = self._held.get(key)
        if entries is not None:
            entries.pop(holder, None)
            if not entries:
                del self._held[key]

    async def renew(self, held: list[tuple[str, str, int, float]]) -> int:
        return sum([not await self.hold(key, holder, limit, lease_s) for key, holder, limit, lease_s in held])


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


_local = LocalSlots()
_process = uuid.uuid4().hex[:16]  # holder ids: unique across processes, cheap within one
_holders = itertools.count()
_redis_slots: RedisSlots | None = None


def slots() -> Slots:
    global _redis_slots
    client = get_redis()
    if client is None:
        return _local
    if _redis_slots is None or _redis_slots._client is not client:
        _redis_slots = RedisSlots(client)
    return _redis_slots


@asynccontextmanager
async def slot(tenant_id: object, name: str, limit: int) -> AsyncIterator[None]:
    """One of the tenant's `limit` slots for `name` while the block runs.

    RateLimited when they are all taken; ServiceUnavailable when Redis is down.
    """
    store, lease_s = slots(), get_settings().slot_lease_s
    key, holder = tenant_key(tenant_id, "slots", name), f"{_process}-{next(_holders)}"
    if not await store.hold(key, holder, limit, lease_s):
        raise RateLimited(f"too many {name} in progress (limit {limit}); retry shortly", retry_after_s=1)
    store.keep_alive(key, holder, limit, lease_s)
    try:
        yield
    finally:
        store.let_go(key, holder)
        try:
            await store.release(key, holder)
        except ServiceUnavailable:  # the entry's deadline frees the slot instead
            log.warning("could not give back a slot of %s (Redis unavailable); it frees itself in %g s", name, lease_s)
