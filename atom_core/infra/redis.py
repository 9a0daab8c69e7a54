"""The process's Redis client (server mode only)."""

from __future__ import annotations

import redis.asyncio as aioredis

from atom_core.settings import get_settings

_client: aioredis.Redis | None = None


def get_redis() -> aioredis.Redis | None:
    """None in embedded mode (no ATOM_REDIS_URL)."""
    global _client
    url = get_settings().redis_url
    if not url:
        return None
    if _client is None:
        _client = aioredis.from_url(url, decode_responses=True, health_check_interval=30)
    return _client


def tenant_key(tenant_id: object, *parts: object) -> str:
    """Every Redis key carries its tenant: `atom:{tenant_id}:…` (`global` for none)."""
    return ":".join(["atom", str(tenant_id or "global"), *map(str, parts)])


async def close_redis() -> None:
    global _client
    if _client is not None:
        await _client.aclose()
    _client = None
