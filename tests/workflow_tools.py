"""Tools for workflow tests: registered by the `test_tools` fixture in the test
process, and by ATOM_PLUGINS=tests.workflow_plugin in worker processes.

`effect` leaves a side effect the tests count: a line in the file named by
ATOM_TEST_EFFECTS_FILE, written only when the step's work is complete.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from pathlib import Path

from atom_core.agents.tools.builtins import TOOLS
from atom_core.errors import AtomError


def _append(line: str) -> None:
    with Path(os.environ["ATOM_TEST_EFFECTS_FILE"]).open("a") as fh:
        fh.write(line + "\n")


async def effect(name: str, sleep_s: float = 0.0) -> dict:
    """Test tool: note the start, wait `sleep_s`, then record `name` as done."""
    await asyncio.to_thread(_append, f"start {name} {os.getpid()} {time.time():.6f}")
    await asyncio.sleep(sleep_s)
    await asyncio.to_thread(_append, f"done {name} {os.getpid()} {time.time():.6f}")
    return {"name": name, "pid": os.getpid()}


async def flaky(key: str, failures: int) -> dict:
    """Test tool: fail the first `failures` calls for `key`, then succeed (counted in the
    effects file, so calls on different worker processes add up)."""
    await asyncio.to_thread(_append, f"call {key} {os.getpid()} {time.time():.6f}")
    calls = sum(
        1 for kind, name, _, _ in effects(Path(os.environ["ATOM_TEST_EFFECTS_FILE"])) if (kind, name) == ("call", key)
    )
    if calls <= failures:
        raise AtomError(f"flaky failure {calls} of {failures}")
    return {"key": key, "calls": calls}


async def broken(message: str, domain: bool = False) -> dict:
    """Test tool: fail with `message`, as a bug would (RuntimeError) or, with `domain`,
    as an AtomError (whose message is shown to users)."""
    await asyncio.to_thread(_append, f"call broken {os.getpid()} {time.time():.6f}")
    raise AtomError(message) if domain else RuntimeError(message)


def register() -> None:
    TOOLS.register(effect, tags={"write"})
    TOOLS.register(flaky, tags={"write"})
    TOOLS.register(broken, tags={"write"})


def unregister() -> None:
    for name in ("effect", "flaky", "broken"):
        TOOLS.unregister(name)


def effects(path: Path) -> list[tuple[str, str, int, float]]:
    """(kind, name, pid, time) per line of the effects file."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        kind, name, pid, at = line.split()
        rows.append((kind, name, int(pid), float(at)))
    return rows


def done(path: Path) -> Counter[str]:
    return Counter(name for kind, name, _, _ in effects(path) if kind == "done")
