"""An unexpected failure in a workflow step fails or retries the step as its
policy says, and never leaves it claimed (`running`): a tool raising a plain
exception, and a database that refuses to store a step's result or its error
(a real trigger, on SQLite and PostgreSQL, seen by the worker processes too).
The three executor combinations."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from atom_core.context import Ctx
from atom_core.workflows import service as workflows
from atom_core.workflows import steps
from tests.conftest import libpq
from tests.workflow_tools import done, effects
from tests.workflows.conftest import settled, statuses

pytestmark = pytest.mark.usefixtures("test_tools", "executor")
LEAK = "sk-leaked-0123456789abcdef"
POISON = "poison-0f3a"  # a step output or error holding this is refused by the database

PG_REFUSAL = f"""
CREATE OR REPLACE FUNCTION atom_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'refused by the test trigger: %', NEW.output::text; END $$;
CREATE TRIGGER atom_test_refuse BEFORE UPDATE ON workflow_steps FOR EACH ROW
WHEN (NEW.output::text LIKE '%{POISON}%' OR NEW.error LIKE '%{POISON}%') EXECUTE FUNCTION atom_test_refuse();
"""
PG_UNDO = "DROP TRIGGER IF EXISTS atom_test_refuse ON workflow_steps; DROP FUNCTION IF EXISTS atom_test_refuse();"
SQLITE_REFUSAL = f"""
CREATE TRIGGER atom_test_refuse BEFORE UPDATE ON workflow_steps
WHEN NEW.output LIKE '%{POISON}%' OR NEW.error LIKE '%{POISON}%'
BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END;
"""


@pytest.fixture
def refusing_database(backend: str) -> Iterator[None]:
    """The database itself refuses to store a step output or error that holds POISON."""
    if backend == "embedded":
        path = make_url(os.environ["ATOM_DATABASE_URL"]).database
        with sqlite3.connect(path) as conn:
            conn.executescript(SQLITE_REFUSAL)
        yield
        return
    admin = libpq(os.environ["ATOM_DATABASE_ADMIN_URL"])
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(PG_REFUSAL)
    try:
        yield
    finally:  # the PostgreSQL database is shared by the whole session
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(PG_UNDO)


async def start(ctx: Ctx, steps: list[dict]) -> workflows.RunView:
    view = await workflows.create_workflow(ctx, {"name": "wf", "steps": steps})
    run = await workflows.start_run(ctx, view.workflow.id, {})
    # Distributed: a step left claimed would keep the run from settling; no need to wait long for that.
    return await settled(ctx, run.id, timeout_s=45)


def effect(step_id: str, name: str, *deps: str, **extra) -> dict:
    step = {"id": step_id, "type": "tool", "tool": "effect", "args": {"name": name}}
    return step | ({"depends_on": list(deps)} if deps else {}) | extra


@pytest.mark.usefixtures("refusing_database")
async def test_a_result_the_database_refuses_fails_the_step_after_its_retries(owner: Ctx, effects_file: Path) -> None:
    retry = {"retry": {"max_attempts": 2, "backoff_s": 0}}
    view = await start(owner, [effect("a", POISON, **retry), effect("b", "after", "a")])
    assert statuses(view) == {"a": "failed", "b": "pending"}, "the step was left claimed"
    a = view.steps[0]
    assert a.attempts == 2 and done(effects_file)[POISON] == 2  # retried as its policy says, then failed
    assert a.error.startswith("internal error") and "refused" not in a.error and POISON not in a.error
    assert view.run.status == "failed" and "refused" not in (view.run.error or "")


async def test_a_tool_raising_a_plain_exception_is_retried_then_fails_the_step(owner: Ctx, effects_file: Path) -> None:
    step = {"id": "a", "type": "tool", "tool": "broken", "args": {"message": LEAK}}
    view = await start(owner, [step | {"retry": {"max_attempts": 2, "backoff_s": 0}}, effect("b", "after", "a")])
    assert statuses(view) == {"a": "failed", "b": "pending"}
    assert view.steps[0].attempts == 2
    assert [kind for kind, name, _, _ in effects(effects_file) if name == "broken"] == ["call", "call"]
    assert LEAK not in (view.steps[0].error or "") and LEAK not in (view.run.error or "")
    assert view.run.status == "failed"


@pytest.mark.usefixtures("refusing_database")
async def test_an_error_the_database_refuses_is_recorded_in_atoms_words(owner: Ctx, effects_file: Path) -> None:
    step = {"id": "a", "type": "tool", "tool": "broken", "args": {"message": POISON, "domain": True}}
    view = await start(owner, [step | {"retry": {"max_attempts": 2, "backoff_s": 0}}, effect("b", "after", "a")])
    assert statuses(view) == {"a": "failed", "b": "pending"}, "the step was left claimed"
    assert view.steps[0].attempts == 2 and view.steps[0].error == steps.UNRECORDABLE
    assert view.run.status == "failed"
