"""Rate limits: moving windows from the `limits` library, in memory or in Redis.

Keys carry the tenant (`atom:{tenant_id}:ratelimit:{name}/…`), so limits of one
tenant never count another's traffic.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from atom_core.errors import Invalid, RateLimited
from atom_core.infra.redis import COMMAND_TIMEOUT_S, CONNECT_TIMEOUT_S, outage
from atom_core.settings import get_settings


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    remaining: int
    retry_after_s: int


class RateLimiter:
    def __init__(self, storage: Storage):
        self._storage = storage
        self._strategy = MovingWindowRateLimiter(storage)

    async def hit(self, rule: str, name: str, identifier: str, tenant_id: object = None) -> Verdict:
        """Count one request against `rule` (e.g. "10/minute") for `identifier`."""
        item = _item(rule, namespace=f"{tenant_id or 'global'}:ratelimit:{name}")
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT_S):  # not redis-py's socket_timeout: see infra/redis.py
                allowed = await self._strategy.hit(item, identifier)
                stats = await self._strategy.get_window_stats(item, identifier)
        except (StorageError, TimeoutError) as exc:  # Redis is down: refuse (503), never let requests through
            raise outage("rate-limit") from exc
        retry_after = 0 if allowed else max(1, math.ceil(stats.reset_time - time.time()))
        return Verdict(allowed=allowed, remaining=stats.remaining, retry_after_s=retry_after)

    async def enforce(self, rule: str, name: str, identifier: str, tenant_id: object = None) -> Verdict:
        verdict = await self.hit(rule, name, identifier, tenant_id)
        if not verdict.allowed:
            raise RateLimited(
                f"too many requests; retry in {verdict.retry_after_s} s", retry_after_s=verdict.retry_after_s
            )
        return verdict


def _item(rule: str, namespace: str) -> RateLimitItem:
    try:
        parsed = parse(rule)
    except ValueError:
        raise Invalid(f"rate limit '{rule}' is not valid; use e.g. '10/minute'", field="rule") from None
    return type(parsed)(parsed.amount, parsed.multiples, namespace=namespace)


_limiter: RateLimiter | None = None


def get_rate_limiter() -> RateLimiter:
    global _limiter
    if _limiter is None:
        url = get_settings().redis_url
        storage = _redis_storage(url) if url else MemoryStorage()
        _limiter = RateLimiter(storage)
    return _limiter


def reset_rate_limiter() -> None:
    global _limiter
    _limiter = None


def _redis_storage(url: str) -> RedisStorage:
    return RedisStorage(
        _limits_uri(url),
        implementation="redispy",
        key_prefix="atom",
        wrap_exceptions=True,  # storage failures arrive as one StorageError
        socket_connect_timeout=CONNECT_TIMEOUT_S,
    )


def _limits_uri(url: str) -> str:
    # `limits` picks its async backend from the scheme.
    return "async+" + url if not url.startswith("async+") else url
