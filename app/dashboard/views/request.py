"""One request: its identity types, plan, jobs with progress, and audit timeline."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.models import ErasureCertificate
from app.audit.service import list_events
from app.core.auth import ApiClient
from app.core.db import utcnow
from app.dashboard.views.names import actor_label, client_names
from app.dashboard.views.queue import DUE_SOON_DAYS, days_left
from app.erasure.enums import RequestStatus
from app.erasure.lifecycle import TERMINAL
from app.erasure.models import ErasureRequest
from app.jobs.enums import ACTIVE_JOB_STATUSES, JobStatus
from app.jobs.models import Job, JobRequest
from app.registry.models import MlModel

# Event data worth showing on the timeline, in this order; anything else stays in the export.
_SHOWN_DATA = (
    "from",
    "reason",
    "months",
    "due_at",
    "records_found",
    "models_affected",
    "records_erased",
    "records_deleted",
)


@dataclass(frozen=True)
class TimelineEntry:
    seq: int
    occurred_at: datetime
    actor: str
    action: str
    details: list[tuple[str, str]]


@dataclass(frozen=True)
class JobRow:
    id: uuid.UUID
    model_id: uuid.UUID
    model_name: str
    status: str
    stage: str
    progress: float
    attempt: int
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def active(self) -> bool:
        return JobStatus(self.status) in ACTIVE_JOB_STATUSES


@dataclass(frozen=True)
class PlanModel:
    model_id: str
    model_name: str
    records: int


@dataclass
class RequestView:
    request: ErasureRequest
    client_name: str
    identity_types: list[str]
    days_left: int | None
    overdue: bool
    due_soon: bool
    plan_models: list[PlanModel] = field(default_factory=list)
    plan_datasets: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[JobRow] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)
    has_certificate: bool = False

    @property
    def settled(self) -> bool:
        """Nothing will change by itself any more: live updates may stop."""
        return RequestStatus(self.request.status) in TERMINAL and not any(
            j.active for j in self.jobs
        )


def _shown(key: str, value: Any) -> str:
    if key.endswith("_at") and isinstance(value, str):
        try:
            return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M UTC")
        except ValueError:
            return value
    return str(value).replace("_", " ") if key in {"from", "to"} else str(value)


def _details(data: dict[str, Any]) -> list[tuple[str, str]]:
    shown = []
    for key in _SHOWN_DATA:
        value = data.get(key)
        if value is None or value == "":
            continue
        shown.append((key.replace("_", " "), _shown(key, value)))
    return shown


def _model_names(session: Session, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not ids:
        return {}
    rows = session.execute(select(MlModel.id, MlModel.name).where(MlModel.id.in_(ids)))
    return {model_id: name for model_id, name in rows}


def jobs_of(session: Session, *, request_id: uuid.UUID) -> list[JobRow]:
    rows = session.execute(
        select(Job, JobRequest.attempt)
        .join(JobRequest, JobRequest.job_id == Job.id)
        .where(JobRequest.request_id == request_id)
        .order_by(Job.created_at)
    ).all()
    names = _model_names(session, {job.model_id for job, _ in rows})
    return [
        JobRow(
            id=job.id,
            model_id=job.model_id,
            model_name=names.get(job.model_id, str(job.model_id)),
            status=job.status,
            stage=job.stage,
            progress=job.progress,
            attempt=attempt,
            error=job.error,
            started_at=job.started_at,
            finished_at=job.finished_at,
        )
        for job, attempt in rows
    ]


def timeline_of(session: Session, *, request_id: uuid.UUID) -> list[TimelineEntry]:
    names = client_names(session)
    events = list_events(
        session, entity_type="erasure_request", entity_id=str(request_id), limit=10_000
    )
    return [
        TimelineEntry(
            seq=e.seq,
            occurred_at=e.occurred_at,
            actor=actor_label(e.actor, names),
            action=e.action.removeprefix("erasure_request.").replace("_", " "),
            details=_details(e.data),
        )
        for e in events
    ]


def load(session: Session, *, request_id: uuid.UUID) -> RequestView | None:
    found = session.execute(
        select(ErasureRequest, ApiClient.name)
        .join(ApiClient, ApiClient.id == ErasureRequest.client_id)
        .where(ErasureRequest.id == request_id)
    ).first()
    if found is None:
        return None
    request, client_name = found
    now = utcnow()
    left = days_left(request, now=now)
    plan = request.plan or {}
    affected = plan.get("models_affected", [])
    names = _model_names(session, {uuid.UUID(m["model_id"]) for m in affected})
    view = RequestView(
        request=request,
        client_name=client_name,
        # Only the types: the values were never stored, and the keyed hashes stay out of pages.
        identity_types=sorted({i["type"] for i in request.identities}),
        days_left=left,
        overdue=left is not None and request.due_at < now,
        due_soon=left is not None and request.due_at >= now and left < DUE_SOON_DAYS,
        plan_models=[
            PlanModel(
                model_id=m["model_id"],
                model_name=names.get(uuid.UUID(m["model_id"]), m["model_id"]),
                records=int(m.get("records", 0)),
            )
            for m in affected
        ],
        plan_datasets=list(plan.get("datasets", [])),
    )
    view.jobs = jobs_of(session, request_id=request.id)
    view.timeline = timeline_of(session, request_id=request.id)
    view.has_certificate = session.get(ErasureCertificate, request.id) is not None
    return view
