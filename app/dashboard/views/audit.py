"""The latest audit events, newest first, a page at a time."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.models import AuditEvent

PER_PAGE = 25


def latest(session: Session, *, before: int | None = None) -> tuple[list[AuditEvent], int | None]:
    """A page of events below `before` (all when None); and the `before` of the next page."""
    query = select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(PER_PAGE + 1)
    if before is not None:
        query = query.where(AuditEvent.seq < before)
    rows = list(session.scalars(query))
    older = rows[PER_PAGE - 1].seq if len(rows) > PER_PAGE else None
    return rows[:PER_PAGE], older


def event(session: Session, *, seq: int) -> AuditEvent | None:
    return session.get(AuditEvent, seq)
