"""A plain `sqlite3` connection on a thread of its own, for hot write paths.

SQLAlchemy's async SQLite adapter sends every statement, fetch and commit to
aiosqlite's thread and back (about 27 round trips for one workflow step), and
its greenlet bridge and statement machinery cost more than the statements do.
A path that runs a whole transaction as one function on this thread pays one
round trip instead. Only small, hot transactions belong here; everything else
uses `session_scope`.

A transaction may keep what it read in `memo` for the next one: the memo is
emptied whenever another connection (of this process or any other) has
committed since this connection's last transaction (SQLite's
`PRAGMA data_version`, read under the write lock), and when a transaction
fails. While it holds anything, this connection wrote everything since.

Writers of this process still take turns with the SQLAlchemy ones on the
event loop (`session.sqlite_writer`), so this connection never waits in
SQLite's busy handler for a writer of its own process; `busy_timeout` still
arbitrates between processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import make_url

from atom_core.db import session as sessions
from atom_core.settings import get_settings

T = TypeVar("T")
CHECKPOINT_EVERY = 250  # commits of this connection (a few pages each)
logger = logging.getLogger(__name__)
Work = Callable[[sqlite3.Connection, dict[Any, Any]], T]


class DirectSqlite:
    """One connection, used only on its own thread: transactions run one at a time."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="atom-sqlite")
        self._checkpoints = ThreadPoolExecutor(max_workers=1, thread_name_prefix="atom-sqlite-checkpoint")
        self._commits = 0
        self._connection: sqlite3.Connection | None = None
        self._data_version: int | None = None
        self.memo: dict[Any, Any] = {}  # see the module's docstring; used on the connection's thread only

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(self.path, check_same_thread=True, cached_statements=256)
            sessions.sqlite_pragmas(connection, None)
            connection.execute("PRAGMA cache_size=-32000")  # 32 MB: the hot pages stay in this connection
            connection.execute("PRAGMA mmap_size=268435456")  # reads map the file instead of a syscall each
            # Checkpoints (copying the log into the database, with an fsync) run on another thread
            # (`_checkpoint`), not inside one of this connection's commits every ~1000 pages.
            connection.execute("PRAGMA wal_autocheckpoint=0")
            self._connection = connection
        return self._connection

    def _run(self, work: Work[T]) -> T:
        connection = self._connect()
        connection.execute("BEGIN IMMEDIATE")
        try:
            (version,) = connection.execute("PRAGMA data_version").fetchone()
            if version != self._data_version:  # another connection committed: the memo may be stale
                self.memo.clear()
                self._data_version = version
            result = work(connection, self.memo)
            connection.execute("COMMIT")
        except BaseException:
            self.memo.clear()
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        self._commits += 1
        if self._commits % CHECKPOINT_EVERY == 0:
            self._checkpoints.submit(self._checkpoint)
        return result

    def _checkpoint(self) -> None:
        """Copy the log into the database without holding up this connection's writers
        (PASSIVE: it does what it can while they go on)."""
        try:
            with contextlib.closing(sqlite3.connect(self.path, timeout=0)) as connection:
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:  # another checkpoint is running, or the file is gone: the next one catches up
            logger.debug("SQLite checkpoint skipped", exc_info=True)

    async def transaction(self, work: Work[T]) -> T:
        """Run `work(connection, memo)` in one write transaction on this connection's thread.
        It commits when `work` returns and rolls back when it raises."""
        loop = asyncio.get_running_loop()
        async with sessions.sqlite_writer():
            return await loop.run_in_executor(self._thread, self._run, work)

    def _close(self) -> None:
        self.memo.clear()
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def close(self) -> None:
        """Close the connection on its thread and stop the thread (waits for a running transaction)."""
        self._thread.submit(self._close).result()
        self._thread.shutdown(wait=True)
        self._checkpoints.shutdown(wait=True)


_direct: DirectSqlite | None = None


def get_direct() -> DirectSqlite | None:
    """The direct connection to the configured database, or None when it is not a SQLite file."""
    global _direct
    path = _sqlite_file(get_settings().db_url)
    if path is None:
        return None
    if _direct is None or _direct.path != path:
        if _direct is not None:
            _direct.close()
        sessions.get_engine()  # creates the home directory and the writer lock
        _direct = DirectSqlite(path)
    return _direct


@functools.lru_cache(maxsize=8)
def _sqlite_file(db_url: str) -> str | None:
    url = make_url(db_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return str(Path(url.database))


def close_direct() -> None:
    global _direct
    if _direct is not None:
        _direct.close()
        _direct = None
