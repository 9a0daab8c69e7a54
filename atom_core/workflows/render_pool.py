"""A few render worker processes (`render_worker`), driven from the event loop.

Templates that may do real work render there, never on the server's event loop or a database
thread: one that runs past its wall-clock limit is killed with its process (a thread could not be
stopped, and a `ProcessPoolExecutor` cannot kill one task), and the next request starts a fresh
process. Talking to a worker is a pipe write and a pipe read, both awaited, so the loop stays free
while it renders. A pool belongs to one event loop (its pipes do); each loop gets its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import weakref
from pathlib import Path
from typing import Any

import atom_core
from atom_core.workflows import render_worker
from atom_core.workflows.templates import TemplateError

WORKERS = 2  # renders at once per process; more wait their turn (each may use a core for seconds)
TIME_LIMIT_S = 10.0  # wall clock, request to reply: a stuck worker (CPU time is the real cap, below)
CPU_LIMIT_S = 2  # CPU seconds per request, enforced by the kernel in the worker
MEMORY_LIMIT_MB = 512  # the worker's whole address space
_PACKAGE_ROOT = str(Path(atom_core.__file__).resolve().parents[1])  # the worker imports this same atom_core


class _Worker:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def ask(self, request: bytes) -> dict[str, Any]:
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        stdin.write(request)
        await stdin.drain()
        header = await stdout.readexactly(render_worker.HEADER)
        return json.loads(await stdout.readexactly(int.from_bytes(header, "big")))

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGKILL)  # not the transport: its loop may be closed


class RenderPool:
    def __init__(
        self,
        *,
        workers: int = WORKERS,
        time_limit_s: float = TIME_LIMIT_S,
        cpu_limit_s: int = CPU_LIMIT_S,
        memory_limit_mb: int = MEMORY_LIMIT_MB,
    ) -> None:
        self.time_limit_s = time_limit_s
        self._command = (
            sys.executable, "-m", "atom_core.workflows.render_worker",
            "--memory-mb", str(memory_limit_mb), "--cpu-s", str(cpu_limit_s),
        )  # fmt: skip
        self._turns = asyncio.Semaphore(workers)
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()

    async def ask(self, request: bytes) -> dict[str, Any]:
        """The worker's reply to one request frame (`render_worker.frame`): `{"value"}` or `{"error"}`.
        TemplateError when the worker ran out of time or died."""
        async with self._turns:
            worker = self._idle.pop() if self._idle else await self._start()
            try:
                reply = await asyncio.wait_for(worker.ask(request), self.time_limit_s)
            except TimeoutError:
                self._retire(worker)
                raise TemplateError(f"the template took longer than {self.time_limit_s:g} s") from None
            except (asyncio.IncompleteReadError, ConnectionError):
                self._retire(worker)
                raise TemplateError(await self._death(worker)) from None
            except BaseException:  # cancelled mid-request: its reply would answer the next request
                self._retire(worker)
                raise
            if reply.get("retire"):
                self._retire(worker)
            else:
                self._idle.append(worker)
            return reply

    async def _start(self) -> _Worker:
        # Only what Python needs to start: the server's secrets and settings stay out of its reach.
        path = os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))
        env = {"PYTHONPATH": path, "PATH": os.environ.get("PATH", "")}
        process = await asyncio.create_subprocess_exec(
            *self._command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env
        )
        worker = _Worker(process)
        self._all.add(worker)
        return worker

    async def _death(self, worker: _Worker) -> str:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(worker.process.wait(), 1.0)
        if worker.process.returncode == -signal.SIGXCPU:
            return "the template used more CPU time than it may"
        return "the template needs too much memory"  # the only other way a worker stops mid-request

    def _retire(self, worker: _Worker) -> None:
        worker.kill()
        self._all.discard(worker)

    def close(self) -> None:
        """Kill every worker (a pool's loop is ending)."""
        for worker in list(self._all):
            self._retire(worker)
        self._idle.clear()


_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RenderPool] = weakref.WeakKeyDictionary()


def get_pool() -> RenderPool:
    """This event loop's pool (started empty; workers start on demand)."""
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is None:
        for other_loop, other in list(_pools.items()):
            if other_loop.is_closed():  # its workers can never be asked again
                other.close()
                del _pools[other_loop]
        pool = _pools[loop] = RenderPool()
    return pool
