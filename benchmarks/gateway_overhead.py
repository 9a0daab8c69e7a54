"""ATOM's LLM gateway vs bare `litellm.acompletion`, side by side in one process.

Both call the same OpenAI-compatible stub on loopback (tests/llm_stub.py):

1. sequential: 7 rounds x 25 calls each, the two interleaved (order alternates
   per round), p50/p95 latency and the ratio;
2. concurrent: 2,000 calls at concurrency 200 each, wall time and p50/p95;
3. 500 concurrent agent runs (embedded mode, SQLite) with 0.5 s model latency:
   wall time for all of them (goal: within 1.0 s), next to 500 concurrent bare
   `litellm.acompletion` calls to the same stub (the floor on this machine:
   litellm's own CPU per call, on one event loop), as a ratio.

Goals (issue 3): gateway <= 1.1x bare litellm; the 500 runs within 1.0 s.
Run: .venv/bin/python benchmarks/gateway_overhead.py [--runs-only]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ["ATOM_HOME"] = tempfile.mkdtemp(prefix="atom-bench-")
os.environ["ATOM_AUTH_RATE_LIMIT"] = "100000/minute"
os.environ["ATOM_MAX_CONCURRENT_RUNS"] = "10000"
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from atom_core.agents import runtime
from atom_core.agents import service as agents
from atom_core.db import migrate
from atom_core.llm import gateway, providers
from atom_core.llm.engine import litellm
from atom_core.tenancy import service as tenancy
from tests.llm_stub import LLMStub, Reply

MESSAGES = [{"role": "user", "content": "Say hello in five words."}]
KEY = "sk-bench"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed(call: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await call()
    return (time.perf_counter() - started) * 1000


async def main() -> None:
    await asyncio.to_thread(migrate.upgrade)  # alembic runs its own event loop
    stub = LLMStub().start()
    stub.set_default(step=Reply("hello there from the stub model", prompt_tokens=7, completion_tokens=6))
    signup = await tenancy.signup(
        f"bench-{uuid.uuid4().hex[:6]}@example.com", "bench-password-123", "Bench", client_ip="bench"
    )
    ctx = await tenancy.authenticate(signup.token)
    await providers.set_provider(ctx, "openai", api_key=KEY, api_base=stub.base_url)
    ll = litellm()

    async def bare() -> object:
        return await ll.acompletion(
            model="openai/bench",
            messages=MESSAGES,
            api_key=KEY,
            api_base=stub.base_url,
            num_retries=0,
            max_retries=0,
            _skip_mcp_handler=True,
        )

    async def atom() -> object:
        return await gateway.complete(ctx, gateway.ChatRequest(model="openai/bench", messages=MESSAGES))

    if "--runs-only" in sys.argv:
        await agent_runs(ctx, stub, bare)
        return
    for _ in range(20):  # warm both paths (imports, connection pools, caches)
        await bare()
        await atom()

    print("== sequential: 7 rounds x 25 calls, interleaved")
    samples: dict[str, list[float]] = {"litellm": [], "atom": []}
    for round_no in range(7):
        order = [("litellm", bare), ("atom", atom)]
        for name, call in order if round_no % 2 == 0 else reversed(order):
            samples[name] += [await timed(call) for _ in range(25)]
    report(samples)

    print("== concurrent: 2,000 calls at concurrency 200")
    walls: dict[str, float] = {}
    samples = {"litellm": [], "atom": []}
    for name, call in (("litellm", bare), ("atom", atom), ("litellm", bare), ("atom", atom)):
        gate = asyncio.Semaphore(200)

        async def one(call=call, gate=gate) -> float:
            async with gate:
                return await timed(call)

        started = time.perf_counter()
        samples[name] = list(await asyncio.gather(*(one() for _ in range(2000))))
        walls[name] = time.perf_counter() - started  # the second pass of each counts (warm)
    report(samples)
    print(
        f"   wall: litellm {walls['litellm']:.2f} s, atom {walls['atom']:.2f} s, "
        f"ratio {walls['atom'] / walls['litellm']:.3f}"
    )

    await agent_runs(ctx, stub, bare)


async def agent_runs(ctx, stub: LLMStub, bare: Callable[[], Awaitable[object]]) -> None:
    print("== 500 concurrent agent runs vs 500 concurrent bare litellm calls, 0.5 s model latency")
    stub.set_default(step=Reply("done", prompt_tokens=20, completion_tokens=2), latency=0.5)
    agent = await agents.create_agent(ctx, agents.AgentInput(slug="bench", name="Bench", model="openai/bench"))
    await asyncio.gather(*(bare() for _ in range(50)))  # warm the connection pool and litellm's caches
    await runtime.run_agent(ctx, agent.id, "warm up")
    walls: dict[str, list[float]] = {"litellm": [], "atom": []}
    for _ in range(2):  # interleaved, so both see the same machine
        started = time.perf_counter()
        await asyncio.gather(*(bare() for _ in range(500)))
        walls["litellm"].append(time.perf_counter() - started)
        started = time.perf_counter()
        outcomes = await asyncio.gather(*(runtime.run_agent(ctx, agent.id, f"task {i}") for i in range(500)))
        walls["atom"].append(time.perf_counter() - started)
        assert all(o.run.status == "succeeded" for o in outcomes), "a run failed"
    bare_s, atom_s = min(walls["litellm"]), min(walls["atom"])
    print(f"   bare litellm: 500 calls in {bare_s:.2f} s (best of 2)")
    print(f"   atom: 500 runs in {atom_s:.2f} s (best of 2; goal <= 1.0 s), ratio {atom_s / bare_s:.2f}")
    stub.stop()


def report(samples: dict[str, list[float]]) -> None:
    bare, atom = samples["litellm"], samples["atom"]
    for q in (0.5, 0.95):
        b, a = percentile(bare, q), percentile(atom, q)
        print(f"   p{int(q * 100)}: litellm {b:.2f} ms, atom {a:.2f} ms, ratio {a / b:.3f}, overhead {a - b:+.2f} ms")
    print(
        f"   mean: litellm {statistics.mean(bare):.2f} ms, atom {statistics.mean(atom):.2f} ms, "
        f"ratio {statistics.mean(atom) / statistics.mean(bare):.3f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
