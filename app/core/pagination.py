"""Opaque cursors for keyset pagination over (timestamp, id)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Generic, TypeVar

from pydantic import BaseModel

from app.core.errors import ProblemError

T = TypeVar("T")

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
