"""A few render worker processes (`render_worker`), and the threads that talk to them.

Templates that may do real work render there, never on the server's event loop or a database
thread: one that runs past its wall-clock limit is killed with its process (a thread could not be
stopped, and a `ProcessPoolExecutor` cannot kill one task), and the next request starts a fresh
process. Each worker is driven by one thread of the pool's own executor, which waits on the pipe
without the GIL; the event loop only awaits the answer. Plain pipes and threads, not asyncio
subprocesses: the pool then serves every event loop of the process (the CLI runs one per command).
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
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
    def __init__(self, command: tuple[str, ...]) -> None:
        # Only what Python needs to start: the server's secrets and settings stay out of its reach.
        path = os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))
        env = {"PYTHONPATH": path, "PATH": os.environ.get("PATH", "")}
        pipe = subprocess.PIPE
        self.process = subprocess.Popen(command, stdin=pipe, stdout=pipe, env=env, bufsize=0)  # noqa: S603 - fixed argv

    def ask(self, request: bytes, deadline: float) -> dict[str, Any]:
        """The reply to `request`; TimeoutError past `deadline`, EOFError or OSError if the process died."""
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(request)
        header = self._read(render_worker.HEADER, deadline)
        return json.loads(self._read(int.from_bytes(header, "big"), deadline))

    def _read(self, size: int, deadline: float) -> bytes:
        assert self.process.stdout is not None
        fd, chunks = self.process.stdout.fileno(), []
        while size:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError()
            chunk = os.read(fd, min(size, 1 << 20))
            if not chunk:
                raise EOFError()
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()


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
        self._threads = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="atom-render")
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()

    async def ask(self, request: bytes) -> dict[str, Any]:
        """The worker's reply to one request frame (`render_worker.frame`): `{"value"}` or `{"error"}`.
        TemplateError when the worker ran out of time or died."""
        return await asyncio.get_running_loop().run_in_executor(self._threads, self._ask, request)

    def _ask(self, request: bytes) -> dict[str, Any]:
        worker = self._take()
        try:
            reply = worker.ask(request, time.monotonic() + self.time_limit_s)
        except TimeoutError:
            self._retire(worker)
            raise TemplateError(f"the template took longer than {self.time_limit_s:g} s") from None
        except (EOFError, OSError):
            message = _death(worker)
            self._retire(worker)
            raise TemplateError(message) from None
        except BaseException:
            self._retire(worker)
            raise
        if reply.get("retire"):
            self._retire(worker)
        else:
            with self._lock:
                self._idle.append(worker)
        return reply

    def _take(self) -> _Worker:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        worker = _Worker(self._command)
        with self._lock:
            self._all.add(worker)
        return worker

    def _retire(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._all.discard(worker)

    def close(self) -> None:
        """Kill every worker."""
        self._threads.shutdown(wait=True, cancel_futures=True)
        for worker in list(self._all):
            self._retire(worker)
        self._idle.clear()


def _death(worker: _Worker) -> str:
    try:
        code = worker.process.wait(1.0)
    except subprocess.TimeoutExpired:
        code = None
    if code == -signal.SIGXCPU:
        return "the template used more CPU time than it may"
    return "the template needs too much memory"  # the only other way a worker stops mid-request


_pool: tuple[int, RenderPool] | None = None
_pool_lock = threading.Lock()


def get_pool() -> RenderPool:
    """This process's pool (started empty; workers start on demand). A forked child gets its own."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), RenderPool())
        return _pool[1]
