"""The embedded fast path: a plain sqlite3 connection on its own thread
(`db.direct`) and the workflow statements on it (`stores.SqliteStore`).

Rows it writes must read back through SQLAlchemy exactly as SQLAlchemy would
have written them, and what it remembers between transactions must never
hide a write made through another connection."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select, update

from atom_core.context import Ctx
from atom_core.db import session_scope
from atom_core.db.direct import DirectSqlite, get_direct
from atom_core.db.session import sqlite_pragmas
from atom_core.workflows import engine, executors
from atom_core.workflows import service as workflows
from atom_core.workflows.models import StepRun, WorkflowEvent, WorkflowRun
from tests.workflows.conftest import settled, statuses

pytestmark = pytest.mark.parametrize("backend", ["embedded"], indirect=True)

APPROVAL_SPEC = {
    "name": "gate",
    "steps": [
        {"id": "first", "type": "tool", "tool": "calculator", "args": {"expression": "6*7"}},
        {"id": "check", "type": "approval", "depends_on": ["first"]},
        {"id": "last", "type": "tool", "tool": "calculator", "args": {"expression": "1+1"}, "depends_on": ["check"]},
    ],
}


@pytest.fixture
def table_t(tmp_path) -> Iterator[tuple[sqlite3.Connection, DirectSqlite]]:
    """A database with a table `t (x)`: a plain connection to it (another writer) and a direct one."""
    path = str(tmp_path / "direct.db")
    other = sqlite3.connect(path, isolation_level=None)
    sqlite_pragmas(other, None)
    other.execute("CREATE TABLE t (x INTEGER)")
    direct = DirectSqlite(path)
    yield other, direct
    direct.close()
    other.close()


async def test_the_memo_is_emptied_when_another_connection_commits(backend: str, table_t) -> None:
    other, direct = table_t

    def remember(connection: sqlite3.Connection, memo: dict) -> dict:
        seen = dict(memo)
        memo["kept"] = connection.execute("SELECT count(*) FROM t").fetchone()[0]
        return seen

    assert await direct.transaction(remember) == {}
    assert await direct.transaction(remember) == {"kept": 0}  # nothing else wrote: kept
    other.execute("INSERT INTO t VALUES (1)")
    assert await direct.transaction(remember) == {}  # another connection committed: forgotten
    assert await direct.transaction(remember) == {"kept": 1}

    def fail(connection: sqlite3.Connection, memo: dict) -> None:
        connection.execute("INSERT INTO t VALUES (2)")
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await direct.transaction(fail)
    assert await direct.transaction(remember) == {}  # a failed transaction forgets too
    assert other.execute("SELECT count(*) FROM t").fetchone()[0] == 1  # and wrote nothing


async def test_embedded_sqlite_uses_the_direct_connection(backend: str, owner: Ctx) -> None:
    assert get_direct() is not None


@pytest.mark.parametrize(
    "output",
    ["text with 'quotes' and ünïcode", 42, 1.5, True, None, [1, "two", None], {"nested": {"list": [1, 2]}}],
)
async def test_values_written_directly_read_back_through_sqlalchemy(backend: str, owner: Ctx, output) -> None:
    created = await workflows.create_workflow(owner, APPROVAL_SPEC)
    run = await workflows.start_run(owner, created.workflow.id, {})
    await executors.embedded().idle()
    claim = await engine.claim(owner.tenant_id, run.id, "first")
    assert claim is None  # the embedded executor already ran it
    # Record a result through the direct path for a step made running by hand ...
    async with session_scope(owner) as session:
        await session.exec(
            update(StepRun)
            .where(StepRun.run_id == run.id, StepRun.step_id == "last")
            .values(status="running", attempts=1, lease_until=datetime.now(UTC) + timedelta(minutes=5))
        )
    await engine.finish(owner.tenant_id, run.id, "last", 1, output, 1234)
    # ... and read it back as the API does.
    async with session_scope(owner, readonly=True) as session:
        row = (await session.exec(select(StepRun).where(StepRun.run_id == run.id, StepRun.step_id == "last"))).one()
        run_row = (await session.exec(select(WorkflowRun).where(WorkflowRun.id == run.id))).one()
        last_event = (
            await session.exec(
                select(WorkflowEvent).where(WorkflowEvent.run_id == run.id).order_by(WorkflowEvent.seq.desc())
            )
        ).first()
    assert row.output == output and row.status == "succeeded" and row.cost_micros == 1234
    assert row.finished_at is not None and row.finished_at.tzinfo is not None
    assert abs(row.finished_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert isinstance(row.id, uuid.UUID) and row.lease_until is None
    assert run_row.cost_micros == 1234 and run_row.event_seq == last_event.seq
    assert last_event.type == "step.finished" and last_event.data["output"] == output


async def test_a_write_through_another_connection_is_seen_by_the_next_transition(backend: str, owner: Ctx) -> None:
    """The approval decision is written through a SQLAlchemy session (with its audit entry);
    the transitions after it, on the direct connection, must see it."""
    created = await workflows.create_workflow(owner, APPROVAL_SPEC)
    run = await workflows.start_run(owner, created.workflow.id, {})
    waiting = await settled(owner, run.id)
    assert statuses(waiting) == {"first": "succeeded", "check": "waiting", "last": "pending"}
    await workflows.decide(owner, run.id, "check", True)
    done = await settled(owner, run.id)
    assert done.run.status == "succeeded"
    assert statuses(done) == {"first": "succeeded", "check": "succeeded", "last": "succeeded"}
    assert done.run.output == {"expression": "1+1", "result": 2}


async def test_concurrent_transactions_share_a_commit_and_fail_alone(backend: str, table_t) -> None:
    other, direct = table_t
    commits: list[int] = []
    real_run = direct._run

    def counting_run(works):
        commits.append(len(works))
        return real_run(works)

    direct._run = counting_run  # type: ignore[method-assign]

    def insert(value: int):
        def work(connection: sqlite3.Connection, memo: dict) -> int:
            connection.execute("INSERT INTO t VALUES (?)", (value,))
            if value == 3:
                raise ValueError("three is refused")
            return value

        return work

    results = await asyncio.gather(*(direct.transaction(insert(v)) for v in range(6)), return_exceptions=True)
    assert results[:3] == [0, 1, 2] and results[4:] == [4, 5]
    assert isinstance(results[3], ValueError) and str(results[3]) == "three is refused"
    stored = sorted(x for (x,) in other.execute("SELECT x FROM t"))
    assert stored == [0, 1, 2, 4, 5]  # the failed one's insert was undone, the others' kept
    assert sum(commits) == 6 and len(commits) < 6  # fewer commits than transactions
