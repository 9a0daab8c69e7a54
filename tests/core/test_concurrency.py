"""Concurrency slots: the cap holds under concurrent takes, a live holder keeps
its slot past its lease, and a holder that dies (a killed process, or one
that stops renewing) stops counting within one lease under steady traffic."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from contextlib import AsyncExitStack

import pytest
import redis

from atom_core.db.migrate import PROJECT_ROOT
from atom_core.errors import RateLimited
from atom_core.infra import concurrency
from atom_core.infra.redis import tenant_key
from atom_core.settings import reset_settings

LEASE_S = 0.6
NAME = "agent runs"
GIVE_UP_S = 30  # a bound for a hang, not a measurement

HOLDER = """
import asyncio, sys
from atom_core.infra import concurrency

async def main(tenant):
    async with concurrency.slot(tenant, "agent runs", 3):
        async with concurrency.slot(tenant, "agent runs", 3):
            print("held", flush=True)
            await asyncio.sleep(3600)

asyncio.run(main(sys.argv[1]))
"""


@pytest.fixture(autouse=True)
def short_lease(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATOM_SLOT_LEASE_S", str(LEASE_S))
    reset_settings()


async def take_all(tenant: object, limit: int, wanted: int) -> tuple[int, AsyncExitStack]:
    """Try `wanted` slots at once; how many were granted (held until the stack closes)."""
    stack = AsyncExitStack()

    async def one() -> bool:
        try:
            await stack.enter_async_context(concurrency.slot(tenant, NAME, limit))
        except RateLimited:
            return False
        return True

    granted = await asyncio.gather(*(one() for _ in range(wanted)))
    return sum(granted), stack


async def until_whole(tenant: object, limit: int) -> int:
    """Steady traffic (a slot taken and given back over and over) until all `limit`
    slots can be held at once; returns how many takes that traffic made."""
    takes = 0
    async with asyncio.timeout(GIVE_UP_S):
        while True:
            try:
                async with concurrency.slot(tenant, NAME, limit):
                    takes += 1
            except RateLimited:
                pass
            with_others, stack = await take_all(tenant, limit, limit)
            await stack.aclose()
            if with_others == limit:
                return takes
            await asyncio.sleep(LEASE_S / 20)


async def test_the_cap_is_never_passed_under_concurrent_takes(backend: str) -> None:
    tenant, other = uuid.uuid4(), uuid.uuid4()
    granted, stack = await take_all(tenant, 5, 60)
    assert granted == 5
    other_granted, other_stack = await take_all(other, 5, 5)  # another tenant's cap is its own
    assert other_granted == 5
    await stack.aclose()
    await other_stack.aclose()
    again, stack = await take_all(tenant, 5, 5)  # every slot given back
    assert again == 5
    await stack.aclose()


async def test_a_live_holder_keeps_its_slot_past_its_lease(backend: str) -> None:
    tenant = uuid.uuid4()
    async with concurrency.slot(tenant, NAME, 1):
        for _ in range(5):  # several leases: its heartbeat renews it
            await asyncio.sleep(LEASE_S)
            with pytest.raises(RateLimited):
                async with concurrency.slot(tenant, NAME, 1):
                    pass
    async with concurrency.slot(tenant, NAME, 1):  # given back on exit
        pass


async def test_a_holder_that_stops_renewing_stops_counting_under_steady_traffic(backend: str) -> None:
    tenant = uuid.uuid4()
    key = tenant_key(tenant, "slots", NAME)
    store = concurrency.slots()
    for holder in ("gone-1", "gone-2"):  # entries nobody renews or gives back: their holder died
        assert await store.hold(key, holder, 3, LEASE_S)
    granted, stack = await take_all(tenant, 3, 3)
    await stack.aclose()
    assert granted == 1  # they count while their lease lasts

    assert await until_whole(tenant, 3) >= 1


@pytest.mark.parametrize("backend", ["server"], indirect=True)  # embedded slots live and die with their process
async def test_a_killed_holder_process_frees_its_slots_within_one_lease(backend: str) -> None:
    tenant = uuid.uuid4()
    env = os.environ | {"PYTHONPATH": str(PROJECT_ROOT), "ATOM_SLOT_LEASE_S": str(LEASE_S)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tenant)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = await asyncio.wait_for(asyncio.to_thread(holder.stdout.readline), GIVE_UP_S)
        assert line.strip() == "held", holder.stderr.read() if holder.poll() is not None else line
        await asyncio.sleep(LEASE_S * 2)  # alive, it renews: still held after two leases
        granted, stack = await take_all(tenant, 3, 3)
        await stack.aclose()
        assert granted == 1
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        holder.stdout.close()
        holder.stderr.close()

    client = redis.Redis.from_url(os.environ["ATOM_REDIS_URL"], decode_responses=True)
    key = tenant_key(tenant, "slots", NAME)
    seconds, micros = client.time()
    killed_at_ms = seconds * 1000 + micros / 1000
    deadlines = [score for _, score in client.zrange(key, 0, -1, withscores=True)]
    # Each of the dead holder's entries ends at most one lease after its last renewal.
    assert len(deadlines) == 2 and all(d <= killed_at_ms + LEASE_S * 1000 for d in deadlines)
    assert await until_whole(tenant, 3) >= 1  # other runs kept taking slots meanwhile
    assert client.zcard(key) == 0  # and every take pruned what had expired
