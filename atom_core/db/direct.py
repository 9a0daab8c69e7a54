"""A plain `sqlite3` connection on a thread of its own, for hot write paths.

SQLAlchemy's async SQLite adapter sends every statement, fetch and commit to
aiosqlite's thread and back (about 27 round trips for one workflow step), and
its greenlet bridge and statement machinery cost more than the statements do.
Here a whole transaction is one function run on this connection's thread:
one round trip. Only small, hot transactions belong here; everything else
uses `session_scope`.

Group commit: transactions asked for while others are running wait, then run
together, each in a savepoint of one shared transaction (one BEGIN, one
COMMIT, one round trip). Each still either commits whole or not at all, and
none is answered before the COMMIT that makes it durable.

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
Work = Callable[[sqlite3.Connection, dict[Any, Any]], T]
Outcome = tuple[Any, BaseException | None]
CHECKPOINT_EVERY = 250  # commits of this connection (a few pages each)
BATCH_MAX = 64  # transactions sharing one commit
logger = logging.getLogger(__name__)


class DirectSqlite:
    """One connection, used only on its own thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="atom-sqlite")
        self._checkpoints = ThreadPoolExecutor(max_workers=1, thread_name_prefix="atom-sqlite-checkpoint")
        self._connection: sqlite3.Connection | None = None
        self._data_version: int | None = None
        self._commits = 0
        self._waiting: list[tuple[Work[Any], asyncio.Future[Any]]] = []
        self._committer: asyncio.Task[None] | None = None
        self.memo: dict[Any, Any] = {}  # see the module's docstring; used on the connection's thread only

    async def transaction(self, work: Work[T]) -> T:
        """Run `work(connection, memo)` in a write transaction on this connection's thread.
        Its writes are committed when it returns and undone when it raises."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[T] = loop.create_future()
        self._waiting.append((work, answer))
        if self._committer is None or self._committer.done() or self._committer.get_loop() is not loop:
            self._committer = loop.create_task(self._commit_waiting())
        return await answer

    async def _commit_waiting(self) -> None:
        """Run what waits, a batch per transaction, until nothing does."""
        loop = asyncio.get_running_loop()
        while self._waiting:
            batch, self._waiting = self._waiting[:BATCH_MAX], self._waiting[BATCH_MAX:]
            try:
                async with sessions.sqlite_writer():
                    outcomes = await loop.run_in_executor(self._thread, self._run, [work for work, _ in batch])
            except asyncio.CancelledError:  # the loop is going away: nobody will be answered
                for _, answer in batch + self._waiting:
                    answer.cancel()
                self._waiting = []
                raise
            except Exception as exc:  # the batch as a whole failed (e.g. at COMMIT)
                outcomes = [(None, exc)] * len(batch)
            self._answer(batch, outcomes)

    @staticmethod
    def _answer(batch: list[tuple[Work[Any], asyncio.Future[Any]]], outcomes: list[Outcome]) -> None:
        for (_, answer), (result, error) in zip(batch, outcomes, strict=True):
            if answer.done():  # its task was cancelled meanwhile; the work ran all the same
                continue
            if error is not None:
                answer.set_exception(error)
            else:
                answer.set_result(result)

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

    def _run(self, works: list[Work[Any]]) -> list[Outcome]:
        """One transaction for all of `works`, each in a savepoint of its own (when there are several)."""
        connection = self._connect()
        connection.execute("BEGIN IMMEDIATE")
        try:
            (version,) = connection.execute("PRAGMA data_version").fetchone()
            if version != self._data_version:  # another connection committed: the memo may be stale
                self.memo.clear()
                self._data_version = version
            outcomes = [self._one(connection, work, alone=len(works) == 1) for work in works]
            connection.execute("COMMIT")
        except BaseException:
            self.memo.clear()
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        self._commits += 1
        if self._commits % CHECKPOINT_EVERY == 0:
            self._checkpoints.submit(self._checkpoint)
        return outcomes

    def _one(self, connection: sqlite3.Connection, work: Work[Any], *, alone: bool) -> Outcome:
        if alone:  # its error rolls the whole transaction back (see `_run`)
            return work(connection, self.memo), None
        connection.execute("SAVEPOINT work")
        try:
            result = work(connection, self.memo)
        except Exception as exc:  # this one's writes are undone; the others' stand
            self.memo.clear()  # it may have changed what the memo holds before failing
            connection.execute("ROLLBACK TO work")
            connection.execute("RELEASE work")
            return None, exc
        connection.execute("RELEASE work")
        return result, None

    def _checkpoint(self) -> None:
        """Copy the log into the database without holding up this connection's writers
        (PASSIVE: it does what it can while they go on)."""
        try:
            with contextlib.closing(sqlite3.connect(self.path, timeout=0)) as connection:
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:  # another checkpoint is running, or the file is gone: the next one catches up
            logger.debug("SQLite checkpoint skipped", exc_info=True)

    def _close(self) -> None:
        self.memo.clear()
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def close(self) -> None:
        """Close the connection on its thread and stop the threads (waits for a running transaction)."""
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
