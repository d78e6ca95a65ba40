"""Finishing a request whose jobs are all done: purge its data, sign its certificate,
complete it, in the transaction that saw the last job succeed."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from app.audit.certificates import issue_certificate
from app.audit.service import SYSTEM_ACTOR, append_event
from app.erasure import lifecycle
from app.erasure.models import ErasureRequest
from app.jobs.models import Job
from app.lineage.service import purge_claimed
from app.registry.versions import brief


def finalize(
    session: Session, *, request: ErasureRequest, jobs: list[Job], reason: str | None = None
) -> None:
    """Delete the request's records and identities, sign its certificate, complete it."""
    subject_ids = [uuid.UUID(s) for s in (request.plan or {}).get("subject_ids", [])]
    deleted, subjects_deleted = purge_claimed(
        session, request_id=request.id, subject_ids=subject_ids
    )
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
        reason=reason,
    )


def _without_per_record_scores(figures: Any) -> Any:
    """Certificates carry the test's summary, not a score for each erased record."""
    if isinstance(figures, dict):
        return {k: _without_per_record_scores(v) for k, v in figures.items() if k != "percentiles"}
    return figures


def _model_claims(session: Session, job: Job) -> dict[str, Any]:
    new = brief(session, version_id=job.result_version_id)
    old = brief(session, version_id=job.base_version_id)
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
