"""Opaque cursors for keyset pagination over (timestamp, id), and the one query that pages."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import Select, or_, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.core.errors import ProblemError

T = TypeVar("T")
M = TypeVar("M")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(*, at: datetime, id: uuid.UUID) -> str:
    raw = json.dumps([at.isoformat(), str(id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, id_ = json.loads(raw)
        return datetime.fromisoformat(at), uuid.UUID(id_)
    except (ValueError, TypeError) as exc:
        raise ProblemError(
            422,
            "The cursor is not one this API returned",
            errors=[{"parameter": "cursor", "in": "query", "detail": "invalid cursor"}],
        ) from exc


def newest_first(
    session: Session,
    query: Select[M],
    *,
    at: InstrumentedAttribute[datetime],
    id_: InstrumentedAttribute[uuid.UUID],
    cursor: str | None,
    limit: int,
) -> tuple[list[M], str | None]:
    """One page of `query`'s rows, newest first by (`at`, `id_`), after `cursor`; and the cursor
    of the next page, or None on the last one. Every list of the API pages this way."""
    if cursor:
        last_at, last_id = decode_cursor(cursor)
        query = query.where(
            or_(at < last_at, (at == last_at) & (id_ < last_id))
            if session.get_bind().dialect.name == "sqlite"
            else tuple_(at, id_) < tuple_(last_at, last_id)
        )
    rows = list(session.scalars(query.order_by(at.desc(), id_.desc()).limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, encode_cursor(at=getattr(last, at.key), id=getattr(last, id_.key))
