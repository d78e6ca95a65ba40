"""The queue: requests with their due dates, filtered, searched and paged; counts per status."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from app.core.auth import ApiClient
from app.core.db import utcnow
from app.erasure.enums import RequestStatus
from app.erasure.lifecycle import OPEN
from app.erasure.models import ErasureRequest

PER_PAGE = 25
DUE_SOON_DAYS = 7
OPEN_FILTER, ALL_FILTER = "open", "all"


@dataclass(frozen=True)
class QueueFilters:
    status: str = OPEN_FILTER  # `open`, `all`, or one status
    client_id: uuid.UUID | None = None
    overdue: bool | None = None
    search: str = ""
    page: int = 1


@dataclass(frozen=True)
class QueueRow:
    id: uuid.UUID
    reference: str | None
    status: str
    client_name: str
    received_at: datetime
    due_at: datetime
    days_left: int | None  # None once the request is closed
    overdue: bool
    due_soon: bool
    extended_months: int


@dataclass(frozen=True)
class QueuePage:
    rows: list[QueueRow]
    total: int
    page: int
    pages: int


def days_left(request: ErasureRequest, *, now: datetime) -> int | None:
    if RequestStatus(request.status) not in OPEN:
        return None
    days = (request.due_at - now).total_seconds() / 86400
    # Whole days, rounded away from the due date: "1 d left" until it is due, then "overdue".
    return math.ceil(days) if days >= 0 else math.floor(days)


def status_counts(session: Session) -> dict[str, int]:
    """Requests per status (every status listed, zeros too), and `open`, `overdue`, `all`."""
    counts = {s.value: 0 for s in RequestStatus}
    for status, count in session.execute(
        select(ErasureRequest.status, func.count()).group_by(ErasureRequest.status)
    ):
        counts[status] = count
    open_values = [s.value for s in OPEN]
    overdue = session.scalar(
        select(func.count())
        .select_from(ErasureRequest)
        .where(ErasureRequest.status.in_(open_values), ErasureRequest.due_at < utcnow())
    )
    counts[OPEN_FILTER] = sum(counts.get(s, 0) for s in open_values)
    counts["overdue"] = overdue or 0
    counts[ALL_FILTER] = sum(v for k, v in counts.items() if k in {s.value for s in RequestStatus})
    return counts


def _filtered(
    query: Select[tuple[ErasureRequest]], f: QueueFilters
) -> Select[tuple[ErasureRequest]]:
    open_values = [s.value for s in OPEN]
    if f.status == OPEN_FILTER:
        query = query.where(ErasureRequest.status.in_(open_values))
    elif f.status != ALL_FILTER:
        query = query.where(ErasureRequest.status == f.status)
    if f.client_id is not None:
        query = query.where(ErasureRequest.client_id == f.client_id)
    if f.overdue is not None:
        late = ErasureRequest.status.in_(open_values) & (ErasureRequest.due_at < utcnow())
        query = query.where(late if f.overdue else ~late)
    term = f.search.strip()
    if term:
        try:
            query = query.where(ErasureRequest.id == uuid.UUID(term))
        except ValueError:
            query = query.where(
                func.lower(ErasureRequest.reference).contains(term.lower(), autoescape=True)
            )
    return query


def queue(session: Session, *, filters: QueueFilters, per_page: int = PER_PAGE) -> QueuePage:
    """Open requests soonest due first; any other selection newest first."""
    base = _filtered(select(ErasureRequest), filters)
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    pages = max(1, math.ceil(total / per_page))
    page = min(max(1, filters.page), pages)
    order = (
        (ErasureRequest.due_at.asc(), ErasureRequest.id.asc())
        if filters.status == OPEN_FILTER
        else (ErasureRequest.received_at.desc(), ErasureRequest.id.desc())
    )
    rows = session.execute(
        base.add_columns(ApiClient.name)
        .join(ApiClient, ApiClient.id == ErasureRequest.client_id)
        .order_by(*order)
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    now = utcnow()
    out = []
    for request, client_name in rows:
        left = days_left(request, now=now)
        out.append(
            QueueRow(
                id=request.id,
                reference=request.reference,
                status=request.status,
                client_name=client_name,
                received_at=request.received_at,
                due_at=request.due_at,
                days_left=left,
                overdue=left is not None and request.due_at < now,
                due_soon=left is not None and request.due_at >= now and left < DUE_SOON_DAYS,
                extended_months=request.due_extension_months,
            )
        )
    return QueuePage(rows=out, total=total, page=page, pages=pages)


def client_choices(session: Session) -> list[tuple[uuid.UUID, str]]:
    """Clients that have sent requests, for the filter."""
    return [
        (row.id, row.name)
        for row in session.execute(
            select(ApiClient.id, ApiClient.name)
            .where(ApiClient.id.in_(select(ErasureRequest.client_id).distinct()))
            .order_by(ApiClient.name)
        )
    ]
