"""The process's Redis client (server mode only), and what an outage looks like.

Connecting times out quickly (`CONNECT_TIMEOUT_S`), and ATOM's own calls run
under a deadline (`unavailable_as`, `COMMAND_TIMEOUT_S`), so a Redis that is
down or hung answers a request in seconds, not never. The deadline is
asyncio's, not redis-py's `socket_timeout`: with that set, redis-py 7.4
swallows the cancellation of a task that is waiting for a reply (measured:
109 of 200 cancelled publishes carried on), and an agent run cancelled
mid-publish then ran to its end. Subscriptions wait for messages for as
long as they like: they run outside any deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from atom_core.errors import ServiceUnavailable
from atom_core.settings import get_settings

CONNECT_TIMEOUT_S = 2.0
COMMAND_TIMEOUT_S = 5.0
RETRY_AFTER_S = 5
# What an unreachable or hung Redis raises through redis-py.
OUTAGE_ERRORS = (RedisConnectionError, RedisTimeoutError)

_client: aioredis.Redis | None = None


def get_redis() -> aioredis.Redis | None:
    """None in embedded mode (no ATOM_REDIS_URL). A subscription takes a pooled connection of its own."""
    global _client
    url = get_settings().redis_url
    if not url:
        return None
    if _client is None:
        _client = aioredis.from_url(
            url, decode_responses=True, health_check_interval=30, socket_connect_timeout=CONNECT_TIMEOUT_S
        )
    return _client


def outage(service: str) -> ServiceUnavailable:
    """The error a request gets when Redis, which `service` needs, cannot be reached."""
    return ServiceUnavailable(
        f"the {service} service (Redis) is unavailable; retry shortly", retry_after_s=RETRY_AFTER_S
    )


@asynccontextmanager
async def unavailable_as(service: str, timeout_s: float | None = COMMAND_TIMEOUT_S) -> AsyncIterator[None]:
    """Turn a Redis outage inside the block, or a reply slower than `timeout_s` (None: a block
    that waits on purpose, like a subscription), into `ServiceUnavailable` naming `service`."""
    try:
        async with asyncio.timeout(timeout_s):
            yield
    except (*OUTAGE_ERRORS, TimeoutError) as exc:
        raise outage(service) from exc


def tenant_key(tenant_id: object, *parts: object) -> str:
    """Every Redis key carries its tenant: `atom:{tenant_id}:…` (`global` for none)."""
    return ":".join(["atom", str(tenant_id or "global"), *map(str, parts)])


async def close_redis() -> None:
    global _client
    if _client is not None:
        await _client.aclose()
    _client = None
