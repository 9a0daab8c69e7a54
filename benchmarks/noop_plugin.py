"""ATOM_PLUGINS=benchmarks.noop_plugin: the no-op tool of benchmarks/workflow_overhead.py.

Imported by the benchmark itself and, through ATOM_PLUGINS, by the `atom worker`
processes it starts (with the project root on PYTHONPATH), so the tool its
workflows name exists wherever a step runs.
"""

from __future__ import annotations

from atom_core.agents.tools.builtins import TOOLS

NOOP_TOOL = "bench_noop"


async def bench_noop() -> dict:
    """Benchmark tool: does nothing and returns at once."""
    return {"ok": True}


def register() -> None:
    if NOOP_TOOL not in TOOLS:
        TOOLS.register(bench_noop, name=NOOP_TOOL, tags={"read"})


register()
