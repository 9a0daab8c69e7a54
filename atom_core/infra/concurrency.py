"""Per-tenant caps on work in flight (e.g. concurrent agent runs).

A slot is taken before the work starts and always given back. In server mode
the count lives in Redis so the cap holds across nodes; a TTL on the key
repairs the count if a node dies holding slots.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from atom_core.errors import RateLimited
from atom_core.infra.redis import get_redis, tenant_key

SLOT_TTL_S = 3600
_local: Counter[str] = Counter()


@asynccontextmanager
async def slot(tenant_id: object, name: str, limit: int) -> AsyncIterator[None]:
    key = tenant_key(tenant_id, "inflight", name)
    client = get_redis()
    taken = await _take_redis(client, key) if client else _take_local(key)
    try:
        if taken > limit:
            raise RateLimited(f"too many {name} in progress (limit {limit}); retry shortly", retry_after_s=1)
        yield
    finally:
        if client:
            await client.decr(key)
        else:
            _local[key] -= 1


async def _take_redis(client, key: str) -> int:
    async with client.pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, SLOT_TTL_S)
        taken, _ = await pipe.execute()
    return int(taken)


def _take_local(key: str) -> int:
    _local[key] += 1
    return _local[key]
