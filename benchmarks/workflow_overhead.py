"""ATOM's durable workflow engine vs LangGraph, side by side in one process.

Both run the same no-op DAGs:

- chain-50: 50 nodes, each depending on the one before;
- fanout-10x5: 5 layers of 10 nodes; every node of layer k+1 depends on *all*
  10 nodes of layer k (a full join between layers; layer 0 starts at once).
  LangGraph gets START -> each layer-0 node, `add_edge([all of layer k], node)`
  (a waiting edge: the node runs once all of layer k are done), last layer -> END.

1. Per-step engine overhead (always): ATOM's embedded executor with SQLite
   persistence vs LangGraph with SqliteSaver, both on files in one temp dir.
   ATOM's steps are tool steps calling a registered no-op async tool
   (benchmarks/noop_plugin.py), so each goes through the real engine: claim
   under a lease, the tool executor, finish, successor scheduling, events; a run
   is `workflows.start_run` + `executors.embedded().idle()`. LangGraph's nodes
   return None; it is measured four ways (sync `SqliteSaver` + `invoke`, async
   `AsyncSqliteSaver` + `ainvoke`, each with durability "async", its default,
   and "sync") and the fastest one is the baseline. ("exit" is left out: it
   checkpoints only at the end, so a crash loses every finished step.)
   Per-step overhead = wall time of a whole run / nodes. Rounds interleave the
   engines (order alternating per round); medians are reported, with the
   process CPU time per step beside them (steadier than wall time on a busy host).
   Goal (issue 4): ATOM <= 1/3 of LangGraph's per-step overhead.
   Then the commit floor: what one chain step's durable transaction costs with no
   engine at all (plain sqlite3, the step's result, the next step's claim, two
   events, the run's counters), through a database thread as ATOM runs it and,
   for comparison, on the event loop itself.
   `--profile` adds where ATOM's time goes for one run of each shape: SQL
   statements, transactions and driver round trips per step, step rows loaded,
   time per engine phase, per-step cost against chain length (10/50/200), a
   cProfile summary; with `--distributed`, also one fan-out run on PostgreSQL.

2. Distributed throughput (`--distributed`, needs PostgreSQL and Redis): a
   throwaway database (created as the owner, migrated with the app role, dropped
   at the end), then `--runs` fanout-10x5 runs started at once, first on the
   embedded executor (this process, PostgreSQL + Redis), then on 2 `atom worker
   --processes 1 --threads 16` processes (ATOM_EXECUTOR=distributed). Steps/s =
   all steps / (last run's finished_at - first start). The Redis database given
   and the next one (Dramatiq's queue) are flushed before and after.
   The per-tenant cap on steps in flight (ATOM_WORKFLOW_MAX_CONCURRENT_STEPS,
   64 by default) is raised to `--step-cap` so the figure is the engine's, not
   the cap's 1 s back-off.

Only ratios and figures are reported; nothing asserts a time.

Run (the `bench` extra: `pip install -e '.[bench]'`, or `make bench`):
    .venv/bin/python benchmarks/workflow_overhead.py [--rounds N] [--profile]
    .venv/bin/python benchmarks/workflow_overhead.py --distributed \\
        --database-url postgresql://atom_app@127.0.0.1:5432/postgres \\
        --admin-url postgresql://atom_owner@127.0.0.1:5432/postgres \\
        --redis-url redis://127.0.0.1:6379/12 [--runs 20] [--skip-overhead]
The output is a table, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import cProfile
import io
import json
import os
import pstats
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORKDIR = Path(tempfile.mkdtemp(prefix="atom-wf-bench-"))
atexit.register(lambda: WORKDIR.is_dir() and not any(WORKDIR.iterdir()) and WORKDIR.rmdir())  # e.g. --help
for _name in ("ATOM_DATABASE_URL", "ATOM_DATABASE_ADMIN_URL", "ATOM_REDIS_URL", "ATOM_QUEUE_REDIS_URL"):
    os.environ.pop(_name, None)
os.environ |= {
    "ATOM_HOME": str(WORKDIR / "home"),
    "ATOM_DATABASE_URL": f"sqlite+aiosqlite:///{WORKDIR / 'home' / 'atom.db'}",
    "ATOM_SECRET_KEY": "bench-" + uuid.uuid4().hex,
    "ATOM_AUTH_RATE_LIMIT": "100000/minute",
    "ATOM_EXECUTOR": "embedded",
    "ATOM_PLUGINS": "",
}

import aiosqlite  # noqa: E402
import aiosqlite.core  # noqa: E402
from langgraph.checkpoint.sqlite import SqliteSaver  # noqa: E402
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402
from sqlalchemy import event  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlmodel import select  # noqa: E402

from atom_core.agents import tool_settings  # noqa: E402
from atom_core.context import Ctx  # noqa: E402
from atom_core.db import dispose_engine, get_engine, session_scope  # noqa: E402
from atom_core.db import migrate as migrations  # noqa: E402
from atom_core.db.direct import DirectSqlite  # noqa: E402
from atom_core.db.session import sqlite_pragmas  # noqa: E402
from atom_core.infra.ratelimit import reset_rate_limiter  # noqa: E402
from atom_core.infra.redis import close_redis  # noqa: E402
from atom_core.settings import reset_settings  # noqa: E402
from atom_core.tenancy import service as tenancy  # noqa: E402
from atom_core.workflows import engine, executors, steps  # noqa: E402
from atom_core.workflows import service as workflows  # noqa: E402
from atom_core.workflows.models import StepRun, WorkflowRun  # noqa: E402
from atom_core.workflows.stores import SqliteStore  # noqa: E402
from benchmarks.noop_plugin import NOOP_TOOL, register  # noqa: E402

GOAL_RATIO = 1 / 3
CHAIN_LEN = 50
FAN_WIDTH, FAN_DEPTH = 10, 5
PASSWORD = "bench-password-123"
WORKER_THREADS = 16
WORKERS = 2
WORKER_COMMAND = (sys.executable, "-m", "atom_core.interfaces.cli", "worker")


# ---------------------------------------------------------------------- shapes


@dataclass(frozen=True)
class Shape:
    name: str
    nodes: list[str]
    deps: dict[str, list[str]]  # node -> the nodes it waits for

    @property
    def size(self) -> int:
        return len(self.nodes)


def chain(n: int) -> Shape:
    nodes = [f"s{i:02d}" for i in range(n)]
    return Shape(f"chain-{n}", nodes, {node: nodes[i - 1 : i] for i, node in enumerate(nodes)})


def fanout(width: int, depth: int) -> Shape:
    layers = [[f"l{k}_{j}" for j in range(width)] for k in range(depth)]
    deps = {node: (layers[k - 1] if k else []) for k, layer in enumerate(layers) for node in layer}
    return Shape(f"fanout-{width}x{depth}", [n for layer in layers for n in layer], deps)


def atom_spec(shape: Shape) -> dict:
    steps_ = []
    for node in shape.nodes:
        step: dict[str, Any] = {"id": node, "type": "tool", "tool": NOOP_TOOL}
        if shape.deps[node]:
            step["depends_on"] = shape.deps[node]
        steps_.append(step)
    return {"name": f"bench {shape.name} {uuid.uuid4().hex[:6]}", "steps": steps_}


class State(TypedDict, total=False):
    started: bool


def langgraph_graph(shape: Shape, node: Callable[[State], Any]) -> StateGraph:
    graph = StateGraph(State)
    for name in shape.nodes:
        graph.add_node(name, node)
    followers: dict[str, list[str]] = defaultdict(list)
    for name in shape.nodes:
        deps = shape.deps[name]
        if not deps:
            graph.add_edge(START, name)
        elif len(deps) == 1:
            graph.add_edge(deps[0], name)
        else:
            graph.add_edge(deps, name)  # waits for all of them
        for dep in deps:
            followers[dep].append(name)
    sinks = [name for name in shape.nodes if not followers[name]]
    graph.add_edge(sinks if len(sinks) > 1 else sinks[0], END)
    return graph


# ----------------------------------------------------------------------- ATOM


async def reset_singletons() -> None:
    await dispose_engine()
    await close_redis()
    reset_rate_limiter()
    reset_settings()


async def new_owner(label: str) -> Ctx:
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    signup = await tenancy.signup(email, PASSWORD, f"Bench {label}", client_ip="127.0.0.1")
    return await tenancy.authenticate(signup.token)


class Atom:
    """One tenant, one workflow per shape; a run is start_run + the executor going idle."""

    def __init__(self, ctx: Ctx) -> None:
        self.ctx, self.workflow_ids = ctx, {}

    async def prepare(self, shape: Shape) -> None:
        view = await workflows.create_workflow(self.ctx, atom_spec(shape))
        self.workflow_ids[shape.name] = view.workflow.id

    async def run(self, shape: Shape) -> tuple[float, float]:
        """(wall, CPU of the whole process) seconds of one run."""
        started, cpu = time.perf_counter(), time.process_time()
        run = await workflows.start_run(self.ctx, self.workflow_ids[shape.name], {})
        await executors.embedded().idle()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        await check_atom_run(self.ctx, run.id, shape)
        return elapsed, cpu


async def check_atom_run(ctx: Ctx, run_id: uuid.UUID, shape: Shape) -> None:
    view = await workflows.get_run(ctx, run_id)
    done = sum(1 for s in view.steps if s.status == "succeeded")
    if view.run.status != "succeeded" or done != shape.size:
        raise SystemExit(f"ATOM run {run_id} ended {view.run.status} with {done}/{shape.size} steps: {view.run.error}")


# ------------------------------------------------------------------ LangGraph


class LangGraph:
    """LangGraph with a file-backed SQLite checkpointer, sync and async flavours."""

    VARIANTS = ("sync/durability=async", "sync/durability=sync", "async/durability=async", "async/durability=sync")

    def __init__(self) -> None:
        self.calls = 0
        self.compiled: dict[tuple[str, str], Any] = {}
        self.sync_conn = sqlite3.connect(WORKDIR / "langgraph-sync.db", check_same_thread=False)
        self.sync_saver = SqliteSaver(self.sync_conn)
        self.async_conn: aiosqlite.Connection | None = None

    async def open(self) -> None:
        self.async_conn = await aiosqlite.connect(WORKDIR / "langgraph-async.db")
        self.async_saver = AsyncSqliteSaver(self.async_conn)

    async def close(self) -> None:
        if self.async_conn is not None:
            await self.async_conn.close()
        self.sync_conn.close()

    def _node(self, _state: State) -> None:
        self.calls += 1

    async def _anode(self, _state: State) -> None:
        self.calls += 1

    def prepare(self, shape: Shape) -> None:
        self.compiled[(shape.name, "sync")] = langgraph_graph(shape, self._node).compile(checkpointer=self.sync_saver)
        self.compiled[(shape.name, "async")] = langgraph_graph(shape, self._anode).compile(
            checkpointer=self.async_saver
        )

    async def run(self, shape: Shape, variant: str) -> tuple[float, float]:
        """(wall, CPU of the whole process) seconds of one run."""
        flavour, durability = variant.split("/durability=")
        graph = self.compiled[(shape.name, flavour)]
        config = {"configurable": {"thread_id": uuid.uuid4().hex}}
        self.calls = 0
        started, cpu = time.perf_counter(), time.process_time()
        if flavour == "sync":
            graph.invoke({"started": True}, config, durability=durability)
        else:
            await graph.ainvoke({"started": True}, config, durability=durability)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        if self.calls != shape.size:
            raise SystemExit(f"LangGraph ran {self.calls} of {shape.size} nodes of {shape.name}")
        return elapsed, cpu


# ------------------------------------------------------------ 1. per-step cost


@dataclass
class Samples:
    per_step_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    cpu_per_step_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def median(self, engine_name: str) -> float:
        return statistics.median(self.per_step_ms[engine_name])

    def cpu(self, engine_name: str) -> float:
        return statistics.median(self.cpu_per_step_ms[engine_name])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def per_step_overhead(shapes: list[Shape], rounds: int, runs: int) -> tuple[dict, Atom]:
    await asyncio.to_thread(migrations.upgrade, url=os.environ["ATOM_DATABASE_URL"])  # alembic has its own loop
    atom = Atom(await new_owner("sqlite"))
    lg = LangGraph()
    await lg.open()
    engines: list[tuple[str, Callable[[Shape], Awaitable[tuple[float, float]]]]] = [("atom", atom.run)]
    engines += [(f"langgraph {v}", lambda shape, v=v: lg.run(shape, v)) for v in LangGraph.VARIANTS]
    results: dict[str, Any] = {}
    try:
        for shape in shapes:
            await atom.prepare(shape)
            lg.prepare(shape)
            for _ in range(3):  # warm both (imports, pools, caches, the spec cache)
                for _, run in engines:
                    await run(shape)
            samples = Samples()
            for round_no in range(rounds):
                for name, run in engines if round_no % 2 == 0 else list(reversed(engines)):
                    for _ in range(runs):
                        wall, cpu = await run(shape)
                        samples.per_step_ms[name].append(wall * 1000 / shape.size)
                        samples.cpu_per_step_ms[name].append(cpu * 1000 / shape.size)
            results[shape.name] = summarise(shape, samples)
    finally:
        await lg.close()
    return results, atom


def summarise(shape: Shape, samples: Samples) -> dict:
    lg_names = [n for n in samples.per_step_ms if n.startswith("langgraph")]
    best = min(lg_names, key=samples.median)
    atom_ms, lg_ms = samples.median("atom"), samples.median(best)
    ratio = atom_ms / lg_ms
    return {
        "steps": shape.size,
        "samples": len(samples.per_step_ms["atom"]),
        "median_ms_per_step": {n: round(samples.median(n), 4) for n in samples.per_step_ms},
        "p90_ms_per_step": {n: round(percentile(v, 0.9), 4) for n, v in samples.per_step_ms.items()},
        "median_cpu_ms_per_step": {n: round(samples.cpu(n), 4) for n in samples.per_step_ms},
        "langgraph_best": best,
        "atom_ms_per_step": round(atom_ms, 4),
        "langgraph_ms_per_step": round(lg_ms, 4),
        "ratio_atom_over_langgraph": round(ratio, 3),
        "cpu_ratio_atom_over_langgraph": round(samples.cpu("atom") / samples.cpu(best), 3),
        "goal_ratio": round(GOAL_RATIO, 3),
        "goal_met": ratio <= GOAL_RATIO,
    }


def print_overhead(results: dict, rounds: int, runs: int) -> None:
    print(f"== 1. per-step overhead, no-op DAGs ({rounds} rounds x {runs} runs per engine, interleaved)")
    print("   ATOM: embedded executor + SQLite; LangGraph: SqliteSaver (file)")
    print("   ms/step = run wall time / nodes; CPU ms/step = process CPU time (all threads) / nodes")
    print(f"   {'shape':<13} {'engine':<34} {'median ms/step':>14} {'p90':>8} {'ms/run':>8} {'CPU ms/step':>12}")
    for shape_name, r in results.items():
        for name, median in r["median_ms_per_step"].items():
            mark = " <- baseline" if name == r["langgraph_best"] else ""
            label = "atom (embedded, sqlite)" if name == "atom" else name
            print(
                f"   {shape_name:<13} {label:<34} {median:>14.3f} {r['p90_ms_per_step'][name]:>8.3f}"
                f" {median * r['steps']:>8.1f} {r['median_cpu_ms_per_step'][name]:>12.3f}{mark}"
            )
        verdict = "MET" if r["goal_met"] else "NOT MET"
        slower = r["ratio_atom_over_langgraph"]
        print(
            f"   {shape_name:<13} ratio ATOM / LangGraph best = {slower:.2f}"
            f" (goal <= {GOAL_RATIO:.2f}): {verdict}"
            + (f" - ATOM is {slower:.1f}x slower per step" if slower > 1 else "")
        )
        print(
            f"   {'':<13} CPU ratio (process CPU time per step, less sensitive to a busy host) = "
            f"{r['cpu_ratio_atom_over_langgraph']:.2f}"
        )
    print()


# ---------------------------------------------------------- the commit floor

FLOOR_SCHEMA = """
CREATE TABLE runs (id TEXT PRIMARY KEY, event_seq INTEGER, cost INTEGER);
CREATE TABLE steps (id TEXT PRIMARY KEY, run_id TEXT, status TEXT, attempts INTEGER, output TEXT,
                    started_at TEXT, finished_at TEXT, lease_until TEXT);
CREATE INDEX ix_steps_run ON steps (run_id);
CREATE TABLE events (id TEXT PRIMARY KEY, run_id TEXT, seq INTEGER, type TEXT, data TEXT, created_at TEXT,
                     UNIQUE (run_id, seq));
"""


async def commit_floor(steps: int = 2000) -> dict[str, float]:
    """What one durable chain step costs here with no engine at all: one write transaction
    recording what a step must (its result, the next step's claim, two events, the run's
    counters) on SQLite with ATOM's settings (WAL, synchronous=NORMAL), run on a database
    thread (one round trip, as ATOM does: no blocking I/O on the event loop) and, for
    comparison, on the event loop itself. Median ms per step over 5 blocks."""
    path = WORKDIR / "floor.db"
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    sqlite_pragmas(connection, None)
    connection.executescript(FLOOR_SCHEMA)
    run_id, ids = uuid.uuid4().hex, [uuid.uuid4().hex for _ in range(steps + 1)]
    connection.execute("INSERT INTO runs VALUES (?, 0, 0)", (run_id,))
    connection.executemany(
        "INSERT INTO steps (id, run_id, status, attempts) VALUES (?, ?, 'pending', 0)", [(i, run_id) for i in ids]
    )

    def step(n: int) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(
            "UPDATE steps SET status = 'succeeded', output = 'null', finished_at = ?, lease_until = NULL WHERE id = ?",
            (now, ids[n]),
        )
        connection.execute(
            "UPDATE steps SET status = 'running', attempts = 1, started_at = ?, lease_until = ? WHERE id = ?",
            (now, now, ids[n + 1]),
        )
        connection.executemany(
            "INSERT INTO events VALUES (?, ?, ?, ?, '{}', ?)",
            [
                (uuid.uuid4().hex, run_id, 2 * n + k, kind, now)
                for k, kind in ((1, "step.finished"), (2, "step.started"))
            ],
        )
        connection.execute("UPDATE runs SET event_seq = ?, cost = cost + 0 WHERE id = ?", (2 * n + 2, run_id))
        connection.execute("COMMIT")

    loop, thread = asyncio.get_running_loop(), ThreadPoolExecutor(max_workers=1)
    figures: dict[str, list[float]] = {"thread": [], "inline": []}
    block, done = steps // 10, 0
    try:
        for _ in range(5):
            for mode in ("thread", "inline"):
                started = time.perf_counter()
                for n in range(done, done + block):
                    if mode == "thread":
                        await loop.run_in_executor(thread, step, n)
                    else:
                        step(n)
                figures[mode].append((time.perf_counter() - started) * 1000 / block)
                done += block
    finally:
        thread.shutdown()
        connection.close()
    return {mode: round(statistics.median(values), 3) for mode, values in figures.items()}


def print_floor(floor: dict[str, float], overhead: dict) -> None:
    baseline = overhead["chain-50"]["langgraph_ms_per_step"] if overhead else None
    print("== the commit floor: one durable chain step's transaction, no engine (SQLite, WAL, synchronous=NORMAL)")
    for mode, label in (("thread", "through a database thread (as ATOM)"), ("inline", "on the event loop")):
        ratio = f" = {floor[mode] / baseline:.2f} x LangGraph's chain step" if baseline else ""
        print(f"   {label:<38} {floor[mode]:.3f} ms/step{ratio}")
    print()


# -------------------------------------------------------------------- profile


@contextmanager
def instrumented() -> Iterator[dict[str, Any]]:
    """Counts for one stretch of ATOM work: SQL statements (by verb and first table) on
    SQLAlchemy's connections (with their driver time) and on the direct sqlite3 connection
    (`db.direct`), commits, round trips to a database thread, transitions, and how many
    transitions read the run's rows from the database instead of the connection's memo."""
    stats: dict[str, Any] = {
        "count": Counter(),
        "seconds": Counter(),
        "commits": 0,
        "round_trips": 0,
        "transitions": 0,
        "rows_read": 0,
        "runs_read": 0,
    }
    sync_engine = get_engine().sync_engine
    starts: dict[int, tuple[float, str]] = {}

    def before(conn, cursor, statement, params, context, executemany) -> None:
        starts[id(cursor)] = (time.perf_counter(), classify(statement))

    def after(conn, cursor, statement, params, context, executemany) -> None:
        started, kind = starts.pop(id(cursor))
        stats["count"][kind] += 1
        stats["seconds"][kind] += time.perf_counter() - started

    def commit(conn) -> None:
        stats["commits"] += 1

    def traced(statement: str) -> None:  # every statement of the direct connection (no timing there)
        stats["count"][classify(statement)] += 1

    hooks = [(sync_engine, "before_cursor_execute", before), (sync_engine, "after_cursor_execute", after)]
    hooks += [(sync_engine, "commit", commit)]
    for target, name, fn in hooks:
        event.listen(target, name, fn)
    patches = [(aiosqlite.core.Connection, "_execute"), (DirectSqlite, "_run"), (engine, "_locked")]
    patches += [(SqliteStore, "lock_run"), (SqliteStore, "step_rows")]
    originals = {(owner, name): getattr(owner, name) for owner, name in patches}

    async def round_trip(self, fn, *args, **kwargs):
        stats["round_trips"] += 1
        return await originals[(aiosqlite.core.Connection, "_execute")](self, fn, *args, **kwargs)

    def batch(self, works):
        stats["round_trips"] += 1
        stats["commits"] += 1
        self._connect().set_trace_callback(traced)
        try:
            return originals[(DirectSqlite, "_run")](self, works)
        finally:
            self._connect().set_trace_callback(None)

    def transition(*args, **kwargs):
        stats["transitions"] += 1
        return originals[(engine, "_locked")](*args, **kwargs)

    def run_read(self, *args, **kwargs):
        stats["runs_read"] += 1
        return originals[(SqliteStore, "lock_run")](self, *args, **kwargs)

    def rows_read(self, *args, **kwargs):
        rows = list(originals[(SqliteStore, "step_rows")](self, *args, **kwargs))
        stats["rows_read"] += len(rows)
        return rows

    replacements = [round_trip, batch, transition, run_read, rows_read]
    for (owner, name), replacement in zip(patches, replacements, strict=True):
        setattr(owner, name, replacement)
    try:
        yield stats
    finally:
        for (owner, name), original in originals.items():
            setattr(owner, name, original)
        for target, name, fn in hooks:
            event.remove(target, name, fn)


def classify(statement: str) -> str:
    """`SELECT workflow_runs`, `UPDATE workflow_steps`, `BEGIN IMMEDIATE`, ... (verb and first table)."""
    words = statement.split()
    upper = [w.upper() for w in words]
    verb = upper[0] if upper else "?"
    keyword = {"SELECT": "FROM", "DELETE": "FROM", "INSERT": "INTO", "UPDATE": "UPDATE"}.get(verb)
    if keyword in upper and upper.index(keyword) + 1 < len(words):
        return f"{verb} {words[upper.index(keyword) + 1].strip(chr(34) + '(')}"
    return " ".join(words[:2])[:40]


@contextmanager
def phase_timer() -> Iterator[dict[str, list[float]]]:
    """Wall time of each engine phase a step goes through (patched here, restored after)."""
    spent: dict[str, list[float]] = defaultdict(list)
    patches = [
        (workflows, "_begin", "start_run's first transition"),
        (engine, "claim", "claim (1 transaction)"),
        (tool_settings, "tool_env", "tool_env (cached)"),
        (steps, "execute", "tool executor + no-op tool"),
        (engine, "finish", "finish + advance (1 transaction)"),
    ]
    originals = []
    for module, attr, label in patches:
        original = getattr(module, attr)
        originals.append((module, attr, original))

        async def timed(*a, _original=original, _label=label, **kw):
            started = time.perf_counter()
            try:
                return await _original(*a, **kw)
            finally:
                spent[_label].append(time.perf_counter() - started)

        setattr(module, attr, timed)
    try:
        yield spent
    finally:
        for module, attr, original in originals:
            setattr(module, attr, original)


async def anatomy(atom: Atom, shape: Shape) -> dict:
    """One instrumented run: where its wall time goes, per step."""
    with instrumented() as sql, phase_timer() as phases:
        started, cpu = time.perf_counter(), time.thread_time()
        await atom.run(shape)
        wall, cpu = time.perf_counter() - started, time.thread_time() - cpu  # the event loop's thread
    n = shape.size
    return {
        "ms_per_step": round(wall * 1000 / n, 3),
        "main_thread_cpu_ms_per_step": round(cpu * 1000 / n, 3),
        "statements_per_step": round(sum(sql["count"].values()) / n, 2),
        "transitions_per_step": round(sql["transitions"] / n, 2),
        "commits_per_step": round(sql["commits"] / n, 2),
        "db_thread_round_trips_per_step": round(sql["round_trips"] / n, 2),
        "runs_read_from_db_per_step": round(sql["runs_read"] / n, 2),
        "step_rows_read_from_db_per_step": round(sql["rows_read"] / n, 2),
        "sql_ms_per_step": round(sum(sql["seconds"].values()) * 1000 / n, 3),
        "statements": {
            kind: {
                "per_step": round(count / n, 2),
                "ms_each": round(sql["seconds"][kind] * 1000 / count, 3) if kind in sql["seconds"] else None,
            }
            for kind, count in sql["count"].most_common()
        },
        "phases": {
            label: {"per_step": round(len(times) / n, 2), "ms_each": round(statistics.mean(times) * 1000, 3)}
            for label, times in phases.items()
        },
    }


def print_anatomy(name: str, a: dict) -> None:
    print(f"   {name}: {a['ms_per_step']:.3f} ms/step wall, {a['main_thread_cpu_ms_per_step']:.3f} ms/step CPU")
    print(
        f"     per step: {a['statements_per_step']:.1f} SQL statements, {a['transitions_per_step']:.2f} transitions "
        f"in {a['commits_per_step']:.2f} commits, {a['db_thread_round_trips_per_step']:.2f} round trips to a "
        f"database thread; read from the database: {a['runs_read_from_db_per_step']:.2f} run rows, "
        f"{a['step_rows_read_from_db_per_step']:.2f} step rows (the rest from the direct connection's memo)"
    )
    total = a["sql_ms_per_step"]
    print(f"     SQL statements (ms each: SQLAlchemy driver time, '-' on the direct connection; {total:.3f} ms in all)")
    for kind, row in a["statements"].items():
        each = f"{row['ms_each']:>8.3f}" if row["ms_each"] is not None else "       -"
        print(f"       {row['per_step']:>6.2f}/step {each} ms each  {kind}")
    print("     engine phases")
    for label, row in a["phases"].items():
        print(f"       {row['per_step']:>6.2f}/step {row['ms_each']:>8.3f} ms each  {label}")


def module_of(filename: str, function: str) -> str:
    if filename == "~":  # a builtin: name it, so time blocked in epoll stands apart
        return f"builtin {function}"
    path = filename.replace("\\", "/")
    for marker in ("/site-packages/", f"{ROOT.as_posix()}/"):
        if marker in path:
            parts = path.split(marker, 1)[1].removesuffix(".py").split("/")
            return ".".join(parts[: 3 if parts[0] == "atom_core" else 1])
    return "stdlib " + Path(path).stem


async def profile_atom(atom: Atom, shapes: list[Shape]) -> dict:
    """Where ATOM's time goes: one instrumented run per shape, per-step cost against
    chain length, and a cProfile of one chain run."""
    print("== profile: ATOM, embedded executor + SQLite")
    report: dict[str, Any] = {}
    for shape in shapes:
        report[shape.name] = await anatomy(atom, shape)
        print_anatomy(shape.name, report[shape.name])

    print("   per-step cost against chain length (median of 3 runs)")
    scaling = {}
    for length in (10, 50, 200):
        shape = chain(length)
        await atom.prepare(shape)
        await atom.run(shape)  # warm
        with instrumented() as counts:
            samples = [await atom.run(shape)]
        samples += [await atom.run(shape) for _ in range(2)]
        wall, cpu = (statistics.median(x) * 1000 / length for x in zip(*samples, strict=True))
        rows = counts["rows_read"] / length
        scaling[shape.name] = {"ms_per_step": round(wall, 3), "cpu_ms_per_step": round(cpu, 3), "rows": rows}
        print(
            f"     {shape.name:<10} {wall:>7.3f} ms/step, {cpu:>7.3f} CPU ms/step, "
            f"{rows:>6.2f} step rows read from the database per step"
        )
    report["scaling"] = scaling

    shape = shapes[0]
    profiler = cProfile.Profile()
    profiler.enable()
    await atom.run(shape)
    profiler.disable()
    stats = pstats.Stats(profiler, stream=io.StringIO())
    table: dict = stats.stats  # type: ignore[attr-defined]
    total = max(stats.total_tt, 1e-9)  # type: ignore[attr-defined]
    own: Counter[str] = Counter()
    for (filename, _line, name), (_cc, _nc, tottime, _ct, _callers) in table.items():
        own[module_of(filename, name)] += tottime
    print(f"   cProfile of one {shape.name} run ({total * 1000:.0f} ms under the profiler; main thread only)")
    print("     own time by module, top 15")
    for module, seconds in own.most_common(15):
        print(f"       {seconds * 1000:>8.1f} ms {seconds / total:>6.1%}  {module}")
    print("     top 15 functions by cumulative time")
    cumulative = []
    for (filename, line, name), (_cc, ncalls, _tt, cumtime, _callers) in sorted(
        table.items(), key=lambda kv: kv[1][3], reverse=True
    ):
        module = module_of(filename, name)
        if module.startswith(("stdlib ", "builtin")) or name == "<module>":
            continue  # the event loop and contextlib frames wrap everything
        print(f"       {cumtime * 1000:>8.1f} ms {ncalls:>6} calls  {module}:{line} {name}")
        cumulative.append({"function": f"{module}:{line} {name}", "cum_ms": round(cumtime * 1000, 1), "calls": ncalls})
        if len(cumulative) == 15:
            break
    print()
    report["cprofile"] = {
        "shape": shape.name,
        "profiled_ms": round(total * 1000, 1),
        "own_ms_by_module": {m: round(s * 1000, 1) for m, s in own.most_common(15)},
        "top_cumulative": cumulative,
    }
    return report


# -------------------------------------------------------------- 2. distributed


@dataclass
class PgDatabase:
    name: str
    app_url: str
    admin_url: str


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def create_database(app_url: str, admin_url: str) -> PgDatabase:
    import psycopg

    name = f"atom_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(libpq(admin_url), autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db = PgDatabase(
        name,
        make_url(app_url).set(database=name).render_as_string(hide_password=False),
        make_url(admin_url).set(database=name).render_as_string(hide_password=False),
    )
    migrations.upgrade(url=db.admin_url, app_role=make_url(app_url).username)
    return db


def drop_database(db: PgDatabase, admin_url: str, timeout_s: float = 30) -> None:
    """Once the workers' connections are gone (the owner may not end the app role's sessions)."""
    import psycopg

    deadline = time.monotonic() + timeout_s
    with psycopg.connect(libpq(admin_url), autocommit=True, connect_timeout=5) as conn:
        query = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
        while conn.execute(query, (db.name,)).fetchone()[0] and time.monotonic() < deadline:
            time.sleep(0.2)
        try:
            conn.execute(f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)')
        except psycopg.Error as exc:
            print(f"   could not drop the database {db.name}: {exc}; drop it by hand", file=sys.stderr)


def flush_redis(url: str) -> None:
    import redis

    for database in {int(make_url(url).database or 0), (int(make_url(url).database or 0) + 1) % 16}:
        redis.Redis.from_url(make_url(url).set(database=str(database)).render_as_string(False)).flushdb()


class Workers:
    """`atom worker` processes, each in its own process group."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env, self.procs, self.logs = env, [], []

    def start(self, count: int) -> None:
        for i in range(count):
            log_path = WORKDIR / f"worker-{i}.log"
            self.logs.append(log_path)
            with log_path.open("w") as log:
                self.procs.append(
                    subprocess.Popen(
                        [*WORKER_COMMAND, "--processes", "1", "--threads", str(WORKER_THREADS)],
                        env=self.env,
                        cwd=ROOT,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )

    def wait_ready(self, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for proc, log in zip(self.procs, self.logs, strict=True):
                if proc.poll() is not None:
                    raise SystemExit(f"worker exited with {proc.returncode}; see {log}:\n{log.read_text()[-2000:]}")
            if all("ready for action" in log.read_text() for log in self.logs):
                return
            time.sleep(0.2)
        raise SystemExit(f"workers not ready after {timeout_s:g} s; see {WORKDIR}")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def timestamp(moment: datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def cpu_seconds(process_groups: list[int]) -> dict[str, float]:
    """CPU time (user + system) of this process and of every process in the given groups."""
    tick = os.sysconf("SC_CLK_TCK")
    workers = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[2]) in process_groups:
            workers += (int(fields[11]) + int(fields[12])) / tick
    return {"bench": time.process_time(), "workers": workers}


async def load(
    ctx: Ctx, workflow_id: uuid.UUID, runs: int, shape: Shape, distributed: bool, workers: Workers | None = None
) -> dict:
    """Start `runs` runs at once; wait for all; steps/s from the first start to the last finish."""
    groups = [p.pid for p in workers.procs] if workers else []
    cpu = cpu_seconds(groups)
    started_at = time.time()
    started = time.perf_counter()
    run_ids = [r.id for r in await asyncio.gather(*(workflows.start_run(ctx, workflow_id, {}) for _ in range(runs)))]
    if distributed:
        rows = await wait_finished(ctx, run_ids)
    else:
        await executors.embedded().idle()
        rows = await run_rows(ctx, run_ids)
    observed = time.perf_counter() - started
    cpu = {k: v - cpu[k] for k, v in cpu_seconds(groups).items()}
    failed = [r for r in rows if r.status != "succeeded"]
    if failed:
        first = failed[0]
        raise SystemExit(f"{len(failed)} run(s) did not succeed, e.g. {first.id}: {first.status} {first.error}")
    async with session_scope(ctx, readonly=True) as session:
        query = select(StepRun.status).where(StepRun.run_id.in_(run_ids))  # type: ignore[attr-defined]
        statuses = Counter((await session.exec(query)).all())
    if statuses != {"succeeded": runs * shape.size}:
        raise SystemExit(f"step statuses: {dict(statuses)}")
    wall = max(timestamp(r.finished_at) for r in rows) - started_at
    return {
        "runs": runs,
        "steps": runs * shape.size,
        "wall_s": round(wall, 3),
        "steps_per_s": round(runs * shape.size / wall, 1),
        "observed_wall_s": round(observed, 3),
        "cpu_ms_per_step": {
            "this_process": round(cpu["bench"] * 1000 / (runs * shape.size), 2),
            "workers": round(cpu["workers"] * 1000 / (runs * shape.size), 2),
        },
    }


async def run_rows(ctx: Ctx, run_ids: list[uuid.UUID]) -> list[WorkflowRun]:
    async with session_scope(ctx, readonly=True) as session:
        query = select(WorkflowRun).where(WorkflowRun.id.in_(run_ids))  # type: ignore[attr-defined]
        return list((await session.exec(query)).all())


async def wait_finished(ctx: Ctx, run_ids: list[uuid.UUID], timeout_s: float = 300) -> list[WorkflowRun]:
    deadline = time.monotonic() + timeout_s
    while True:
        rows = await run_rows(ctx, run_ids)
        if all(r.status in ("succeeded", "failed", "cancelled") for r in rows):
            return rows
        if time.monotonic() > deadline:
            raise SystemExit(f"runs unfinished after {timeout_s:g} s: {Counter(r.status for r in rows)}")
        await asyncio.sleep(0.02)


async def distributed_throughput(args: argparse.Namespace, shape: Shape) -> dict:
    host = {"cpus": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()]}
    db = await asyncio.to_thread(create_database, args.database_url, args.admin_url)
    workers: Workers | None = None
    try:
        await asyncio.to_thread(flush_redis, args.redis_url)
        os.environ |= {
            "ATOM_DATABASE_URL": db.app_url,
            "ATOM_DATABASE_ADMIN_URL": db.admin_url,
            "ATOM_REDIS_URL": args.redis_url,
            "ATOM_EXECUTOR": "embedded",
        }
        await reset_singletons()
        ctx = await new_owner("postgres")
        view = await workflows.create_workflow(ctx, atom_spec(shape))
        workflow_id = view.workflow.id

        await load(ctx, workflow_id, 2, shape, distributed=False)  # warm the pool and caches
        embedded = await load(ctx, workflow_id, args.runs, shape, distributed=False)
        profile = None
        if args.profile:
            atom = Atom(ctx)
            atom.workflow_ids[shape.name] = workflow_id
            print("== profile: ATOM, embedded executor + PostgreSQL + Redis, one run alone")
            profile = await anatomy(atom, shape)
            print_anatomy(shape.name, profile)
            print()

        env = dict(os.environ) | {
            "ATOM_EXECUTOR": "distributed",
            "ATOM_PLUGINS": "benchmarks.noop_plugin",
            "ATOM_HOME": str(WORKDIR / "worker-home"),
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
        }
        workers = Workers(env)
        workers.start(WORKERS)
        await asyncio.to_thread(workers.wait_ready)
        os.environ["ATOM_EXECUTOR"] = "distributed"
        reset_settings()
        await load(ctx, workflow_id, 4, shape, distributed=True)  # warm both workers
        distributed = await load(ctx, workflow_id, args.runs, shape, distributed=True, workers=workers)
    finally:
        if workers is not None:
            await asyncio.to_thread(workers.stop)
        await dispose_engine()
        await close_redis()
        await asyncio.to_thread(drop_database, db, args.admin_url)
        await asyncio.to_thread(flush_redis, args.redis_url)
    return {
        "shape": shape.name,
        "database": "postgresql",
        "host": host,
        "embedded": embedded,
        "distributed": distributed | {"workers": WORKERS, "threads_per_worker": WORKER_THREADS},
        "ratio_distributed_over_embedded": round(distributed["steps_per_s"] / embedded["steps_per_s"], 3),
    } | ({"profile_embedded_postgres": profile} if profile else {})


def print_distributed(r: dict) -> None:
    runs = r["embedded"]["runs"]
    print(f"== 2. throughput, {runs} {r['shape']} runs at once, PostgreSQL + Redis")
    print(f"   {'executor':<46} {'steps':>6} {'wall s':>7} {'steps/s':>8}   CPU ms/step (bench + workers)")
    label = f"distributed ({WORKERS} workers x 1 proc x {WORKER_THREADS} threads)"
    for name, row in (("embedded (this process)", r["embedded"]), (label, r["distributed"])):
        cpu = row["cpu_ms_per_step"]
        print(
            f"   {name:<46} {row['steps']:>6} {row['wall_s']:>7.2f} {row['steps_per_s']:>8.1f}"
            f"   {cpu['this_process']:.1f} + {cpu['workers']:.1f}"
        )
    print(f"   distributed / embedded = {r['ratio_distributed_over_embedded']:.2f}")
    host = r["host"]
    print(f"   host: {host['cpus']} CPUs, load average {host['load_average']} at the start (shared with PostgreSQL)")
    print()


# ----------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--runs-per-round", type=int, default=2, help="runs per engine per round (default 2)")
    parser.add_argument("--profile", action="store_true", help="show where ATOM's time goes")
    parser.add_argument("--skip-overhead", action="store_true", help="only the distributed part")
    parser.add_argument("--distributed", action="store_true", help="also measure the distributed executor")
    parser.add_argument("--database-url", help="PostgreSQL as the app role (its database name is replaced)")
    parser.add_argument("--admin-url", help="PostgreSQL as the owner role (creates and drops the throwaway database)")
    parser.add_argument("--redis-url", help="Redis; this database and the next are flushed")
    parser.add_argument("--runs", type=int, default=20, help="concurrent runs for the throughput part (default 20)")
    parser.add_argument("--step-cap", type=int, default=100_000, help="ATOM_WORKFLOW_MAX_CONCURRENT_STEPS")
    args = parser.parse_args()
    if args.distributed and not (args.database_url and args.admin_url and args.redis_url):
        parser.error("--distributed needs --database-url, --admin-url and --redis-url")
    return args


async def main() -> None:
    args = parse_args()
    os.environ["ATOM_WORKFLOW_MAX_CONCURRENT_STEPS"] = str(args.step_cap)
    reset_settings()
    register()
    shapes = [chain(CHAIN_LEN), fanout(FAN_WIDTH, FAN_DEPTH)]
    figures: dict[str, Any] = {
        "benchmark": "workflow_overhead",
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    print(f"host: {os.cpu_count()} CPUs, load average {figures['load_average']}; temp files in {WORKDIR}\n")
    try:
        if not args.skip_overhead:
            overhead, atom = await per_step_overhead(shapes, args.rounds, args.runs_per_round)
            print_overhead(overhead, args.rounds, args.runs_per_round)
            figures["per_step"] = overhead
            figures["commit_floor_ms_per_step"] = floor = await commit_floor()
            print_floor(floor, overhead)
            if args.profile:
                figures["profile"] = await profile_atom(atom, shapes)
            elif not all(r["goal_met"] for r in overhead.values()):
                print("   (run with --profile to see where ATOM's time goes)\n")
            await dispose_engine()
        if args.distributed:
            result = await distributed_throughput(args, shapes[1])
            print_distributed(result)
            figures["throughput"] = result
    finally:
        await dispose_engine()
    shutil.rmtree(WORKDIR, ignore_errors=True)  # kept when something failed (worker logs)
    print(json.dumps(figures, separators=(",", ":")))


if __name__ == "__main__":
    asyncio.run(main())
