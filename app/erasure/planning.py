"""Planning: resolve a request's identities to training records, datasets and models.

Idempotent: it re-reads the row, does nothing for a request already past planning, and redoes
the resolution for one left in `planning` by a worker that died.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.certificates import issue_no_data_certificate
from app.audit.service import SYSTEM_ACTOR
from app.core.config import get_settings
from app.core.db import utcnow
from app.erasure import lifecycle, progress, scheduler
from app.erasure.enums import PLANNABLE, RequestStatus
from app.erasure.models import ErasureRequest
from app.jobs import service as jobs_service
from app.jobs.enums import JobKind
from app.lineage.service import IdentityHash, claim_records, resolve_subjects
from app.registry.models import MlModel
from app.registry.service import mitigates, models_on_dataset
from app.suppression.service import remember

log = structlog.get_logger(__name__)


@dataclass
class PlanOutcome:
    status: str
    jobs_to_start: list[uuid.UUID] = field(default_factory=list)


def _may_hold_records(session: Session, *, model: MlModel) -> bool:
    """A model with a version, or one being trained right now, may have seen the records."""
    if model.active_version_id is not None:
        return True
    return jobs_service.is_training(session, model_id=model.id)


def _attach(
    session: Session,
    *,
    request: ErasureRequest,
    model: MlModel,
    window: timedelta,
    max_attempts: int,
) -> tuple[dict[str, str], list[uuid.UUID]]:
    """Join the model's next jobs; returns the plan's entry and the jobs to ring now."""
    join = functools.partial(
        jobs_service.attach_request,
        session,
        model_id=model.id,
        client_id=model.client_id,
        request_id=request.id,
        attempt=request.attempt,
        window=window,
        max_attempts=max_attempts,
    )
    if not mitigates(model):
        job = join()
        return {"model_id": str(model.id), "job_id": str(job.id)}, [job.id]
    mitigation = join(kind=JobKind.MITIGATE)
    exact = join(
        kind=JobKind.UNLEARN,
        not_before=utcnow() + timedelta(hours=get_settings().exact_max_wait_hours),
    )
    scheduler.reschedule(session, model_id=model.id)
    entry = {
        "model_id": str(model.id),
        "job_id": str(exact.id),
        "mitigation_job_id": str(mitigation.id),
    }
    return entry, [mitigation.id]


def plan_request(
    session: Session, *, request_id: uuid.UUID, window: timedelta, max_attempts: int
) -> PlanOutcome:
    """Plan one request in the caller's transaction."""
    request = session.scalar(
        select(ErasureRequest).where(ErasureRequest.id == request_id).with_for_update()
    )
    if request is None:
        log.warning("plan_request_missing", erasure_request_id=str(request_id))
        return PlanOutcome(status="missing")
    status = RequestStatus(request.status)
    if status not in PLANNABLE:
        return PlanOutcome(status=status.value)
    if status is not RequestStatus.PLANNING:
        lifecycle.start_planning(session, request=request, actor=SYSTEM_ACTOR)
    resolved = resolve_subjects(
        session,
        identities=[IdentityHash(type=i["type"], hash=i["hash"]) for i in request.identities],
    )
    record_ids = [r for ids in resolved.records_by_dataset.values() for r in ids]
    claim_records(session, record_ids=record_ids, request_id=request.id)
    affected: list[dict[str, str | int]] = []
    outcome = PlanOutcome(status="")
    for dataset_id, ids in sorted(resolved.records_by_dataset.items(), key=lambda kv: str(kv[0])):
        for model in models_on_dataset(session, dataset_id=dataset_id):
            if not _may_hold_records(session, model=model):
                continue
            entry, to_start = _attach(
                session, request=request, model=model, window=window, max_attempts=max_attempts
            )
            affected.append({**entry, "records": len(ids)})
            outcome.jobs_to_start += to_start
    request.plan = {
        "records_found": resolved.record_count,
        "subjects_found": len(resolved.subject_ids),
        "datasets": [
            {"dataset_id": str(d), "records": len(ids)}
            for d, ids in sorted(resolved.records_by_dataset.items(), key=lambda kv: str(kv[0]))
        ],
        "models_affected": affected,
        "subject_ids": [str(s) for s in resolved.subject_ids],
    }
    summary = {
        "records_found": resolved.record_count,
        "datasets": len(resolved.records_by_dataset),
        "models_affected": len(affected),
    }
    if resolved.record_count == 0:
        # Nothing to purge, but the person is erased all the same: records for them that come
        # later are refused like those of a person whose data was purged.
        suppressed = remember(
            session,
            identities=[(i["type"], i["hash"]) for i in request.identities],
            request_id=request.id,
        )
        lifecycle.complete_without_data(
            session,
            request=request,
            actor=SYSTEM_ACTOR,
            summary={"identities_suppressed": suppressed},
        )
        # Certified like any completed request: the certificate states that nothing was found.
        issue_no_data_certificate(
            session,
            request_id=request.id,
            subject_hashes=[i["hash"] for i in request.identities],
            received_at=request.received_at,
        )
    else:
        lifecycle.mark_planned(session, request=request, actor=SYSTEM_ACTOR, summary=summary)
        progress.advance(session, request=request)  # completes it when no model needs unlearning
    outcome.status = request.status
    return outcome


def left_unplanned(session: Session, *, before: datetime) -> list[uuid.UUID]:
    """Requests waiting to be (re)planned since before `before`: their message was lost."""
    return list(
        session.scalars(
            select(ErasureRequest.id).where(
                ErasureRequest.status.in_(PLANNABLE), ErasureRequest.updated_at < before
            )
        )
    )
