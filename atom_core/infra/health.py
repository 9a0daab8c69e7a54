"""Per-dependency health checks for `/health` and `atom` diagnostics.

Each check answers "ok", "disabled" (not configured in this mode) or a short
reason. Reasons never include URLs or exception text, which can hold secrets.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable
from types import ModuleType

from sqlalchemy import text

from atom_core.db import get_engine
from atom_core.db.migrate import current_head
from atom_core.infra.redis import get_redis
from atom_core.settings import get_settings

CHECK_TIMEOUT_S = 3.0


async def check_database() -> str:
    async with get_engine().connect() as conn:
        await conn.execute(text("SELECT 1"))
        try:
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
        except Exception:
            version = None
    if version != current_head():
        return "migrations pending: run 'atom db upgrade'"
    return "ok"


async def check_redis() -> str:
    client = get_redis()
    if client is None:
        return "disabled"
    await client.ping()
    return "ok"


async def _lancedb() -> ModuleType:
    # A 2 s import: done once, in a thread, so it never stalls the event loop.
    return await asyncio.to_thread(importlib.import_module, "lancedb")


async def check_vector_store() -> str:
    lancedb = await _lancedb()
    db = await lancedb.connect_async(get_settings().lance_path)
    await db.list_tables()
    return "ok"


CHECKS: dict[str, Callable[[], Awaitable[str]]] = {
    "database": check_database,
    "redis": check_redis,
    "vector_store": check_vector_store,
}


async def _run(check: Callable[[], Awaitable[str]]) -> str:
    try:
        return await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
    except TimeoutError:
        return "error: timed out"
    except Exception as exc:
        return f"error: unreachable ({type(exc).__name__})"


async def health() -> tuple[str, dict[str, str]]:
    await _lancedb()  # outside the timed checks: loading code is not an outage
    names = list(CHECKS)
    results = await asyncio.gather(*(_run(CHECKS[n]) for n in names))
    checks = dict(zip(names, results, strict=True))
    status = "ok" if all(r in ("ok", "disabled") for r in results) else "degraded"
    return status, checks
