"""A render worker process: renders templates sent over its stdin, answers on its stdout.

Started by `render_pool` as `python -m atom_core.workflows.render_worker --memory-mb M --cpu-s S`.
Its limits are the kernel's, so they hold even inside one long C-level call the work budget
cannot interrupt: its address space is capped (a memory bomb raises MemoryError or kills it),
each request gets `--cpu-s` seconds of CPU (then SIGXCPU ends the process), and it runs at a
lower priority than the server it works for. The pool also kills it after a wall-clock limit.

Frames both ways are a 4-byte big-endian length and a JSON document:
request `{"kind": "render" | "evaluate", "text", "context"}`, reply `{"value"}` or `{"error"}`
(with `"retire": true` when the process should not be used again).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
from typing import IO, Any

HEADER = 4
NICENESS = 10


def frame(document: Any) -> bytes:
    body = json.dumps(document, separators=(",", ":"), default=str).encode()
    return len(body).to_bytes(HEADER, "big") + body


def _read(stream: IO[bytes]) -> dict[str, Any] | None:
    header = stream.read(HEADER)
    if len(header) < HEADER:
        return None  # the pool closed the pipe (or went away): nothing more to do
    return json.loads(stream.read(int.from_bytes(header, "big")))


def _limit_cpu(seconds: int) -> None:
    """Allow this request `seconds` more of CPU time than the process has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = int(usage.ru_utime + usage.ru_stime) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (used + seconds, resource.RLIM_INFINITY))


RETIRE = {"error": "the template needs too much memory", "retire": True}


def answer(request: dict[str, Any]) -> bytes:
    """The reply frame to one request."""
    from atom_core.workflows import templates

    try:
        if request["kind"] == "evaluate":
            value = templates.evaluate(request["text"], request["context"])
        else:
            value = templates.render(request["text"], request["context"])
        return frame({"value": value})  # a value that cannot be sent is this template's error
    except templates.TemplateError as exc:
        return frame({"error": exc.message})
    except MemoryError:
        return frame(RETIRE)
    except Exception as exc:  # e.g. an undefined value inside the result, met while encoding it
        return frame({"error": (str(exc).splitlines() or [type(exc).__name__])[0][:300]})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--cpu-s", type=int, required=True)
    args = parser.parse_args()
    limit = args.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    os.nice(NICENESS)
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but frames on the reply pipe
    from atom_core.workflows import templates  # noqa: F401 - imported before the first request

    retire = frame(RETIRE)  # built now: there may be no memory for it later
    while True:
        try:
            request = _read(requests)
        except MemoryError:  # the request's data alone does not fit
            reply = retire
        else:
            if request is None:
                return
            _limit_cpu(args.cpu_s)
            reply = answer(request)
        replies.write(reply)
        replies.flush()
        if reply == retire:  # a MemoryError may leave the interpreter in a poor state
            return


if __name__ == "__main__":
    main()
