"""Keyset pagination: newest first, an opaque cursor, stable under inserts."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from atom_core.errors import Invalid

T = TypeVar("T")
MAX_LIMIT = 200


@dataclass
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise Invalid(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    return limit


def encode_cursor(at: datetime, row_id: uuid.UUID) -> str:
    raw = json.dumps([at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, row_id = json.loads(raw)
        return datetime.fromisoformat(at), uuid.UUID(row_id)
    except (ValueError, TypeError, json.JSONDecodeError):
        raise Invalid("cursor is not valid; pass the next_cursor of a previous page", field="cursor") from None


async def paginate(
    session: AsyncSession,
    query: sa.Select,
    order_col: Any,
    id_col: Any,
    *,
    limit: int,
    cursor: str | None,
) -> Page[Any]:
    """Rows of `query` newest first; `order_col`/`id_col` must be in its first entity."""
    check_limit(limit)
    if cursor:
        at, row_id = decode_cursor(cursor)
        query = query.where(sa.or_(order_col < at, sa.and_(order_col == at, id_col < row_id)))
    query = query.order_by(order_col.desc(), id_col.desc()).limit(limit + 1)
    rows = list((await session.exec(query)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more:
        last = rows[-1][0] if isinstance(rows[-1], sa.Row) else rows[-1]
        next_cursor = encode_cursor(getattr(last, order_col.key), getattr(last, id_col.key))
    return Page(items=rows, next_cursor=next_cursor)
