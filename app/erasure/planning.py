"""Planning: resolve a request's identities to training records, datasets and models.

Idempotent: it re-reads the row, does nothing for a request already past planning, and redoes
the resolution for one left in `planning` by a worker that died.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.audit.service import SYSTEM_ACTOR
from app.erasure import lifecycle
from app.erasure.completion import finalize
from app.erasure.lifecycle import Status
from app.erasure.models import ErasureRequest
from app.jobs.models import Job
from app.jobs.service import PENDING, RUNNING, TRAIN, attach_request
from app.lineage.models import TrainingRecord
from app.lineage.service import IdentityHash, resolve_subjects
from app.registry.models import MlModel
from app.registry.service import models_on_dataset

log = structlog.get_logger(__name__)

PLANNABLE = {Status.RECEIVED, Status.APPROVED, Status.PLANNING}


@dataclass
class PlanOutcome:
    status: str
    jobs_to_start: list[uuid.UUID] = field(default_factory=list)


def _may_hold_records(session: Session, *, model: MlModel) -> bool:
    """A model with a version, or one being trained right now, may have seen the records."""
    if model.active_version_id is not None:
        return True
    return (
        session.scalar(
            select(Job.id).where(
                Job.model_id == model.id, Job.kind == TRAIN, Job.status.in_([PENDING, RUNNING])
            )
        )
        is not None
    )


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
    status = Status(request.status)
    if status not in PLANNABLE:
        return PlanOutcome(status=status.value)
    if status is not Status.PLANNING:
        lifecycle.start_planning(session, request=request, actor=SYSTEM_ACTOR)
    resolved = resolve_subjects(
        session,
        identities=[IdentityHash(type=i["type"], hash=i["hash"]) for i in request.identities],
    )
    record_ids = [r for ids in resolved.records_by_dataset.values() for r in ids]
    if record_ids:
        session.execute(
            update(TrainingRecord)
            .where(TrainingRecord.id.in_(record_ids))
            .values(erasure_request_id=request.id)
        )
    affected: list[dict[str, str | int]] = []
    outcome = PlanOutcome(status="")
    for dataset_id, ids in sorted(resolved.records_by_dataset.items(), key=lambda kv: str(kv[0])):
        for model in models_on_dataset(session, dataset_id=dataset_id):
            if not _may_hold_records(session, model=model):
                continue
            job = attach_request(
                session,
                model_id=model.id,
                request_id=request.id,
                window=window,
                max_attempts=max_attempts,
            )
            affected.append({"model_id": str(model.id), "job_id": str(job.id), "records": len(ids)})
            outcome.jobs_to_start.append(job.id)
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
        lifecycle.complete_without_data(session, request=request, actor=SYSTEM_ACTOR)
    else:
        lifecycle.mark_planned(session, request=request, actor=SYSTEM_ACTOR, summary=summary)
        if not affected:  # data but no model trained on it: purge the data and finish
            finalize(session, request=request, jobs=[])
    outcome.status = request.status
    return outcome
