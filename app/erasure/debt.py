"""Erasure debt: requests whose models were mitigated (approximate) but not yet erased exactly.

Per model, how many requests wait for its exact retrain, the oldest receipt and due date among
them, and when the retrain is scheduled. The API, the dashboard and `/metrics` read it here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.auth import ApiClient
from app.erasure.enums import RequestStatus
from app.erasure.models import ErasureRequest
from app.jobs import service as jobs_service
from app.jobs.enums import JobKind


@dataclass(frozen=True)
class ModelDebt:
    model_id: uuid.UUID
    requests: int
    oldest_received_at: datetime
    oldest_due_at: datetime
    exact_scheduled_at: datetime | None
    scheduled_by: str | None


@dataclass(frozen=True)
class Waiting:
    """One mitigated request waiting for one model's exact job."""

    request: ErasureRequest
    model_id: uuid.UUID
    exact_scheduled_at: datetime
    scheduled_by: str | None


def waiting_requests(session: Session, *, client: ApiClient | None = None) -> list[Waiting]:
    """Every mitigated request with each model whose exact job it waits for, soonest due
    first (a non-admin client sees its own requests only)."""
    query = select(ErasureRequest).where(ErasureRequest.status == RequestStatus.MITIGATED)
    if client is not None and not client.is_admin:
        query = query.where(ErasureRequest.client_id == client.id)
    requests = {r.id: r for r in session.scalars(query)}
    if not requests:
        return []
    rows = [
        Waiting(
            request=requests[request_id],
            model_id=job.model_id,
            exact_scheduled_at=job.not_before,
            scheduled_by=(job.metrics or {}).get("scheduled_by"),
        )
        for request_id, job in jobs_service.unfinished_by_request(
            session, request_ids=list(requests), kind=JobKind.UNLEARN
        )
    ]
    return sorted(rows, key=lambda w: (w.request.due_at, str(w.request.id)))


def erasure_debt(session: Session, *, client: ApiClient | None = None) -> list[ModelDebt]:
    """The debt of every model (a non-admin client sees its own requests only)."""
    waiting: dict[uuid.UUID, list[ErasureRequest]] = {}
    scheduled: dict[uuid.UUID, tuple[datetime, str | None]] = {}
    for row in waiting_requests(session, client=client):
        waiting.setdefault(row.model_id, []).append(row.request)
        scheduled[row.model_id] = (row.exact_scheduled_at, row.scheduled_by)
    return [
        ModelDebt(
            model_id=model_id,
            requests=len(rows),
            oldest_received_at=min(r.received_at for r in rows),
            oldest_due_at=min(r.due_at for r in rows),
            exact_scheduled_at=scheduled[model_id][0],
            scheduled_by=scheduled[model_id][1],
        )
        for model_id, rows in sorted(waiting.items(), key=lambda kv: str(kv[0]))
    ]
