"""Driving a request's status from its unlearning jobs, and finishing it: purge the data,
sign the certificate, complete."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.audit.certificates import issue_certificate
from app.audit.service import SYSTEM_ACTOR, append_event
from app.erasure import lifecycle
from app.erasure.lifecycle import Status
from app.erasure.models import ErasureRequest
from app.jobs.models import Job
from app.jobs.service import FAILED, SUCCEEDED, jobs_of_request
from app.lineage.models import DataSubject, SubjectIdentity, TrainingRecord
from app.registry.models import ModelVersion


def _requests(session: Session, request_ids: Iterable[uuid.UUID]) -> list[ErasureRequest]:
    return list(
        session.scalars(
            select(ErasureRequest)
            .where(ErasureRequest.id.in_(list(request_ids)))
            .order_by(ErasureRequest.received_at)
            .with_for_update()
        )
    )


def mark_running(session: Session, *, request_ids: Iterable[uuid.UUID]) -> None:
    for request in _requests(session, request_ids):
        if request.status == Status.PLANNED:
            lifecycle.start_running(session, request=request, actor=SYSTEM_ACTOR)


def mark_verifying(session: Session, *, request_ids: Iterable[uuid.UUID]) -> None:
    """A request verifies once every one of its jobs is verifying or done."""
    for request in _requests(session, request_ids):
        if request.status != Status.RUNNING:
            continue
        jobs = jobs_of_request(session, request_id=request.id)
        if all(j.status == SUCCEEDED or j.stage == "verifying" for j in jobs):
            lifecycle.start_verifying(session, request=request, actor=SYSTEM_ACTOR)


def fall_back(session: Session, *, request_ids: Iterable[uuid.UUID], reason: str) -> None:
    for request in _requests(session, request_ids):
        if request.status == Status.VERIFYING:
            lifecycle.fall_back_to_retraining(
                session, request=request, actor=SYSTEM_ACTOR, reason=reason
            )


def after_jobs(session: Session, *, request_ids: Iterable[uuid.UUID]) -> list[uuid.UUID]:
    """Complete the requests whose jobs all succeeded and fail those with a failed job.
    Returns the ids of the requests completed."""
    completed = []
    for request in _requests(session, request_ids):
        if Status(request.status) in lifecycle.TERMINAL or request.status == Status.FAILED:
            continue
        jobs = jobs_of_request(session, request_id=request.id)
        failed = [j for j in jobs if j.status == FAILED]
        if failed:
            lifecycle.fail(
                session,
                request=request,
                actor=SYSTEM_ACTOR,
                reason=f"unlearning job {failed[0].id} failed: {failed[0].error}",
            )
        elif all(j.status == SUCCEEDED for j in jobs):
            finalize(session, request=request, jobs=jobs)
            completed.append(request.id)
    return completed


def finalize(session: Session, *, request: ErasureRequest, jobs: list[Job]) -> None:
    """Delete the request's records and identities, sign its certificate, complete it."""
    if request.status == Status.PLANNED:
        lifecycle.start_running(session, request=request, actor=SYSTEM_ACTOR)
    if request.status == Status.RUNNING:
        lifecycle.start_verifying(session, request=request, actor=SYSTEM_ACTOR)
    deleted = session.execute(
        delete(TrainingRecord).where(TrainingRecord.erasure_request_id == request.id)
    ).rowcount
    subjects_deleted = _delete_subjects(session, request=request)
    append_event(
        session,
        actor=SYSTEM_ACTOR,
        action="erasure_request.data_purged",
        entity_type="erasure_request",
        entity_id=str(request.id),
        data={"records_deleted": deleted, "subjects_deleted": subjects_deleted},
    )
    models = [_model_claims(session, job) for job in jobs]
    issue_certificate(
        session,
        request_id=request.id,
        subject_hashes=[i["hash"] for i in request.identities],
        received_at=request.received_at,
        records_erased=deleted,
        models=models,
        data_purge={"records_deleted": deleted, "subjects_deleted": subjects_deleted},
    )
    lifecycle.complete(
        session,
        request=request,
        actor=SYSTEM_ACTOR,
        summary={"records_erased": deleted, "models": len(models)},
    )


def _delete_subjects(session: Session, *, request: ErasureRequest) -> int:
    subject_ids = [uuid.UUID(s) for s in (request.plan or {}).get("subject_ids", [])]
    removable = [
        s
        for s in subject_ids
        if not session.scalar(
            select(func.count()).select_from(TrainingRecord).where(TrainingRecord.subject_id == s)
        )
    ]
    if not removable:
        return 0
    session.execute(delete(SubjectIdentity).where(SubjectIdentity.subject_id.in_(removable)))
    return session.execute(delete(DataSubject).where(DataSubject.id.in_(removable))).rowcount


def _without_per_record_scores(figures: Any) -> Any:
    """Certificates carry the test's summary, not a score for each erased record."""
    if isinstance(figures, dict):
        return {k: _without_per_record_scores(v) for k, v in figures.items() if k != "percentiles"}
    return figures


def _model_claims(session: Session, job: Job) -> dict[str, Any]:
    new = session.get(ModelVersion, job.result_version_id) if job.result_version_id else None
    old = session.get(ModelVersion, job.base_version_id) if job.base_version_id else None
    metrics = job.metrics or {}
    return {
        "model_id": str(job.model_id),
        "job_id": str(job.id),
        "old_version": {"id": str(old.id), "number": old.number} if old else None,
        "new_version": {"id": str(new.id), "number": new.number} if new else None,
        "method": new.method if new else metrics.get("method"),
        "exact": new.exact if new else True,
        "verification": _without_per_record_scores(metrics.get("verification")),
        "purge": metrics.get("purge"),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }
