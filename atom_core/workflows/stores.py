"""The statements a run transition issues, on two kinds of connection.

`engine.transact` runs a transition as plain synchronous code inside one
transaction, on either:

- `SessionStore`: a SQLAlchemy session (the sync side of an `AsyncSession`,
  via `run_sync`): PostgreSQL with its row-level security, and transitions
  that also write other tables (an audit entry);
- `SqliteStore`: a plain `sqlite3` connection on its own thread
  (`db.direct`): the embedded default, where SQLAlchemy's async bridge cost
  several times what the statements do. Values are stored exactly as
  SQLAlchemy stores them (UUIDs as 32 hex digits, JSON as text, UTC times as
  'YYYY-MM-DD HH:MM:SS.ffffff', booleans as 0/1), so both read each other's rows.

Both give rows as dicts of Python values, with the slim columns of every step
(`SLIM` plus `queued`) and the detail columns (`DETAIL`) of the steps asked for.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import bindparam, case, delete, func, insert, null, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from atom_core.db.base import UTCDateTime
from atom_core.workflows.models import ActiveRun, StepRun, WorkflowEvent, WorkflowRun, WorkflowVersion

STEPS = StepRun.__table__  # type: ignore[attr-defined]
RUNS = WorkflowRun.__table__  # type: ignore[attr-defined]
EVENTS = WorkflowEvent.__table__  # type: ignore[attr-defined]
ACTIVE = ActiveRun.__table__  # type: ignore[attr-defined]
VERSIONS = WorkflowVersion.__table__  # type: ignore[attr-defined]
SLIM = ("id", "step_id", "status", "attempts", "error", "cost_micros")
DETAIL = (
    "input",
    "output",
    "progress",
    "decision",
    "reused",
    "queued_at",
    "due_at",
    "lease_until",
    "started_at",
    "finished_at",
)
RUN_COLUMNS = tuple(c.name for c in RUNS.columns)
Rows = Iterable[dict[str, Any]]


# ------------------------------------------------------------ SQLAlchemy session


# Built once: building and keying statements again on every transition cost as much as running them.
def _of_run(*columns: Any) -> Any:
    return select(*columns).where(STEPS.c.tenant_id == bindparam("tenant"), STEPS.c.run_id == bindparam("run"))


_FULL = STEPS.c.step_id.in_(bindparam("full", expanding=True))
_QUEUED = STEPS.c.queued_at.is_not(None).label("queued")
_SLIM_COLUMNS = tuple(STEPS.c[name] for name in SLIM)
_DETAIL_COLUMNS = tuple(STEPS.c[name] for name in DETAIL)
_ROWS_SLIM = _of_run(*_SLIM_COLUMNS, _QUEUED)
_ROWS_ALL = _of_run(*_SLIM_COLUMNS, _QUEUED, *_DETAIL_COLUMNS)
_ROWS_SOME = _of_run(*_SLIM_COLUMNS, _QUEUED, *(case((_FULL, c), else_=null()).label(c.name) for c in _DETAIL_COLUMNS))
_DETAIL_ALL = _of_run(STEPS.c.step_id, *_DETAIL_COLUMNS)
_DETAIL_SOME = _DETAIL_ALL.where(_FULL)
_LOCK_RUN = (
    select(*RUNS.c).where(RUNS.c.tenant_id == bindparam("tenant"), RUNS.c.id == bindparam("run")).with_for_update()
)
_SPEC = select(VERSIONS.c.spec).where(
    VERSIONS.c.tenant_id == bindparam("tenant"),
    VERSIONS.c.workflow_id == bindparam("workflow"),
    VERSIONS.c.version == bindparam("version"),
)
_INSERT_EVENTS = insert(EVENTS)
_DELETE_ACTIVE = delete(ACTIVE).where(ACTIVE.c.run_id == bindparam("run"))
_INSERT_ACTIVE = insert(ACTIVE)
_updates: dict[tuple[str, tuple[str, ...]], Any] = {}


def _update(table: sa.Table, names: tuple[str, ...]) -> Any:
    """UPDATE table SET each of `names` WHERE id = :row_id (parameters `v_<name>`), built once."""
    statement = _updates.get((table.name, names))
    if statement is None:
        values = {name: bindparam(f"v_{name}", type_=table.c[name].type) for name in names}
        statement = update(table).where(table.c.id == bindparam("row_id", type_=table.c.id.type)).values(values)
        _updates[(table.name, names)] = statement
    return statement


class SessionStore:
    """The statements on a SQLAlchemy session (inside `AsyncSession.run_sync`)."""

    memo = None

    def __init__(self, session: Session) -> None:
        self.session = session

    def lock_run(self, tenant_id: uuid.UUID, run_id: uuid.UUID) -> dict[str, Any] | None:
        row = self.session.execute(_LOCK_RUN, {"tenant": tenant_id, "run": run_id}).mappings().first()
        return dict(row) if row is not None else None

    def spec(self, tenant_id: uuid.UUID, workflow_id: uuid.UUID, version: int) -> dict[str, Any]:
        params = {"tenant": tenant_id, "workflow": workflow_id, "version": version}
        return self.session.execute(_SPEC, params).scalar_one()

    def step_rows(self, tenant_id: uuid.UUID, run_id: uuid.UUID, full: Collection[str] | None) -> Rows:
        params: dict[str, Any] = {"tenant": tenant_id, "run": run_id}
        if full is None:
            query = _ROWS_ALL
        elif full:
            query, params["full"] = _ROWS_SOME, list(full)
        else:
            query = _ROWS_SLIM
        for values in self.session.execute(query, params).mappings():
            row = dict(values)
            if full is not None and row["step_id"] not in full:
                for name in DETAIL:
                    row.pop(name, None)
            yield row

    def step_details(self, tenant_id: uuid.UUID, run_id: uuid.UUID, step_ids: list[str] | None) -> Rows:
        params: dict[str, Any] = {"tenant": tenant_id, "run": run_id}
        if step_ids is None:
            query = _DETAIL_ALL
        else:
            query, params["full"] = _DETAIL_SOME, step_ids
        return (dict(values) for values in self.session.execute(query, params).mappings())

    def update(self, table: sa.Table, names: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
        params = [{"row_id": row["id"]} | {f"v_{name}": row[name] for name in names} for row in rows]
        self.session.execute(_update(table, names), params if len(params) > 1 else params[0])

    def insert_events(self, rows: list[dict[str, Any]]) -> None:
        self.session.execute(_INSERT_EVENTS, rows)

    def delete_active(self, run_id: uuid.UUID) -> None:
        self.session.execute(_DELETE_ACTIVE, {"run": run_id})

    def add_active(self, tenant_id: uuid.UUID, run_id: uuid.UUID, since: datetime) -> None:
        self.session.execute(_INSERT_ACTIVE, {"run_id": run_id, "tenant_id": tenant_id, "since": since})

    def insert_run(self, run: dict[str, Any], steps: list[dict[str, Any]]) -> None:
        self.session.execute(insert(RUNS), run)
        self.session.execute(insert(STEPS), steps)
        self.add_active(run["tenant_id"], run["id"], run["created_at"])


# ------------------------------------------------------------ plain sqlite3

Codec = tuple[Callable[[Any], Any], Callable[[Any], Any]]


def _json_in(value: Any) -> str:
    return json.dumps(value)  # None is stored as JSON 'null', as SQLAlchemy's JSON type does


def _json_out(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def _uuid_in(value: uuid.UUID | str | None) -> str | None:
    """Step row ids read by `SqliteStore` stay as stored (hex text): they are only written back."""
    return value if value is None or value.__class__ is str else value.hex


def _uuid_out(value: str | None) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(hex=value)


def _time_in(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given where UTC is required")
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _time_out(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


def _bool_out(value: int | None) -> bool | None:
    return None if value is None else bool(value)


def _same(value: Any) -> Any:
    return value


def _codec(column: sa.Column) -> Codec:
    kind = column.type
    if isinstance(kind, sa.Uuid):
        return _uuid_in, _uuid_out
    if isinstance(kind, sa.JSON):
        return _json_in, _json_out
    if isinstance(kind, UTCDateTime):
        return _time_in, _time_out
    if isinstance(kind, sa.Boolean):
        return _same, _bool_out
    return _same, _same


def _codecs(table: sa.Table) -> dict[str, Codec]:
    return {column.name: _codec(column) for column in table.columns}


_CODECS = {table.name: _codecs(table) for table in (STEPS, RUNS, EVENTS)}
_STEP_DECODE = [(name, _CODECS[STEPS.name][name][1]) for name in DETAIL]
_RUN_DECODE = [(name, _CODECS[RUNS.name][name][1]) for name in RUN_COLUMNS]
_QMARK = sqlite.dialect(paramstyle="qmark")


@dataclass(frozen=True)
class _Sql:
    """A statement compiled once by SQLAlchemy for sqlite3, with its parameters' order
    and, for a write to `table`, how each parameter's value is stored."""

    text: str
    names: tuple[str, ...]
    encoders: tuple[tuple[str, Callable[[Any], Any]], ...] = ()

    @classmethod
    def of(cls, statement: Any, table: sa.Table | None = None) -> _Sql:
        compiled = statement.compile(dialect=_QMARK)
        names = tuple(compiled.positiontup or ())
        if table is None:
            return cls(compiled.string, names)
        codecs = _CODECS[table.name]
        # Parameters of `_update` are `v_<column>` and `row_id`; the row's dict has the column names.
        columns = tuple("id" if n == "row_id" else n.removeprefix("v_") for n in names)
        return cls(compiled.string, names, tuple((c, codecs[c][0]) for c in columns))

    def params(self, values: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(values[name] for name in self.names)

    def encoded(self, row: dict[str, Any]) -> tuple[Any, ...]:
        """The parameters for a row of Python values."""
        return tuple(encode(row[column]) for column, encode in self.encoders)


_NAMES = func.json_each(bindparam("names")).table_valued("value")
_SQL_SLIM = _Sql.of(_ROWS_SLIM)
_SQL_ALL = _Sql.of(_ROWS_ALL)
_SQL_DETAIL_ALL = _Sql.of(_DETAIL_ALL)
_SQL_DETAIL_SOME = _Sql.of(_DETAIL_ALL.where(STEPS.c.step_id.in_(select(_NAMES.c.value))))
_SQL_RUN = _Sql.of(select(*RUNS.c).where(RUNS.c.tenant_id == bindparam("tenant"), RUNS.c.id == bindparam("run")))
_SQL_SPEC = _Sql.of(_SPEC)
_SQL_EVENTS = _Sql.of(_INSERT_EVENTS, EVENTS)
_SQL_DELETE_ACTIVE = _Sql.of(_DELETE_ACTIVE)
_SQL_ADD_ACTIVE = _Sql.of(
    insert(ACTIVE).values(run_id=bindparam("run"), tenant_id=bindparam("tenant"), since=bindparam("since"))
)
_SQL_INSERT_RUN = _Sql.of(insert(RUNS), RUNS)
_SQL_INSERT_STEP = _Sql.of(insert(STEPS), STEPS)
_sql_updates: dict[tuple[str, tuple[str, ...]], _Sql] = {}
_SLIM_WIDTH = len(SLIM) + 1


_SLIM_QUEUED = (*SLIM, "queued")  # `queued` stays 0/1 here: it is only ever tested for truth


def _slim(values: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(_SLIM_QUEUED, values, strict=False))


def _with_detail(row: dict[str, Any], values: Iterable[Any]) -> dict[str, Any]:
    for (name, decode), value in zip(_STEP_DECODE, values, strict=True):
        row[name] = decode(value)
    return row


class SqliteStore:
    """The statements on a plain `sqlite3` connection, inside `DirectSqlite.transaction`."""

    session = None

    def __init__(self, connection: sqlite3.Connection, memo: dict[Any, Any]) -> None:
        self.connection, self.memo = connection, memo  # see `DirectSqlite`

    def _rows(self, sql: _Sql, **values: Any) -> list[tuple[Any, ...]]:
        return self.connection.execute(sql.text, sql.params(values)).fetchall()

    def lock_run(self, tenant_id: uuid.UUID, run_id: uuid.UUID) -> dict[str, Any] | None:
        found = self._rows(_SQL_RUN, tenant=tenant_id.hex, run=run_id.hex)
        if not found:
            return None
        return {name: decode(value) for (name, decode), value in zip(_RUN_DECODE, found[0], strict=True)}

    def spec(self, tenant_id: uuid.UUID, workflow_id: uuid.UUID, version: int) -> dict[str, Any]:
        ((text,),) = self._rows(_SQL_SPEC, tenant=tenant_id.hex, workflow=workflow_id.hex, version=version)
        return json.loads(text)

    def step_rows(self, tenant_id: uuid.UUID, run_id: uuid.UUID, full: Collection[str] | None) -> Rows:
        if full is None:
            found = self._rows(_SQL_ALL, tenant=tenant_id.hex, run=run_id.hex)
            return [_with_detail(_slim(values), values[_SLIM_WIDTH:]) for values in found]
        rows = [_slim(values) for values in self._rows(_SQL_SLIM, tenant=tenant_id.hex, run=run_id.hex)]
        if full:
            details = {row["step_id"]: row for row in self.step_details(tenant_id, run_id, list(full))}
            for row in rows:
                if row["step_id"] in details:
                    row |= details[row["step_id"]]
        return rows

    def step_details(self, tenant_id: uuid.UUID, run_id: uuid.UUID, step_ids: list[str] | None) -> Rows:
        if step_ids is None:
            found = self._rows(_SQL_DETAIL_ALL, tenant=tenant_id.hex, run=run_id.hex)
        else:
            found = self._rows(_SQL_DETAIL_SOME, tenant=tenant_id.hex, run=run_id.hex, names=json.dumps(step_ids))
        return [_with_detail({"step_id": values[0]}, values[1:]) for values in found]

    def update(self, table: sa.Table, names: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
        sql = _sql_updates.get((table.name, names))
        if sql is None:
            sql = _sql_updates[(table.name, names)] = _Sql.of(_update(table, names), table)
        self.connection.executemany(sql.text, [sql.encoded(row) for row in rows])

    def insert_events(self, rows: list[dict[str, Any]]) -> None:
        self.connection.executemany(_SQL_EVENTS.text, [_SQL_EVENTS.encoded(row) for row in rows])

    def delete_active(self, run_id: uuid.UUID) -> None:
        self._rows(_SQL_DELETE_ACTIVE, run=run_id.hex)

    def add_active(self, tenant_id: uuid.UUID, run_id: uuid.UUID, since: datetime) -> None:
        self._rows(_SQL_ADD_ACTIVE, run=run_id.hex, tenant=tenant_id.hex, since=_time_in(since))

    def insert_run(self, run: dict[str, Any], steps: list[dict[str, Any]]) -> None:
        self.connection.execute(_SQL_INSERT_RUN.text, _SQL_INSERT_RUN.encoded(run))
        self.connection.executemany(_SQL_INSERT_STEP.text, [_SQL_INSERT_STEP.encoded(row) for row in steps])
        self.add_active(run["tenant_id"], run["id"], run["created_at"])
