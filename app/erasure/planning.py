"""Planning: resolve a request's identities to training records, datasets and models.

Idempotent: it re-reads the row, does nothing for a request already past planning, and redoes
the resolution for one left in `planning` by a worker that died.
"""

from __future__ import annotations

import uuid

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.service import SYSTEM_ACTOR
from app.erasure import lifecycle
from app.erasure.lifecycle import Status
from app.erasure.models import ErasureRequest
from app.lineage.service import IdentityHash, resolve_subjects

log = structlog.get_logger(__name__)

PLANNABLE = {Status.RECEIVED, Status.APPROVED, Status.PLANNING}


def plan_request(session: Session, *, request_id: uuid.UUID) -> str:
    """Plan one request in the caller's transaction; returns the status it ends in."""
    request = session.scalar(
        select(ErasureRequest).where(ErasureRequest.id == request_id).with_for_update()
    )
    if request is None:
        log.warning("plan_request_missing", request_id=str(request_id))
        return "missing"
    status = Status(request.status)
    if status not in PLANNABLE:
        return status.value
    if status is not Status.PLANNING:
        lifecycle.start_planning(session, request=request, actor=SYSTEM_ACTOR)
    resolved = resolve_subjects(
        session,
        identities=[IdentityHash(type=i["type"], hash=i["hash"]) for i in request.identities],
    )
    request.plan = {
        "records_found": resolved.record_count,
        "subjects_found": len(resolved.subject_ids),
        "datasets": [
            {"dataset_id": str(d), "records": len(ids)}
            for d, ids in sorted(resolved.records_by_dataset.items(), key=lambda kv: str(kv[0]))
        ],
        "models_affected": [],
        "record_ids": {str(d): ids for d, ids in resolved.records_by_dataset.items()},
        "subject_ids": [str(s) for s in resolved.subject_ids],
    }
    summary = {"records_found": resolved.record_count, "datasets": len(resolved.records_by_dataset)}
    if resolved.record_count == 0:
        lifecycle.complete_without_data(session, request=request, actor=SYSTEM_ACTOR)
    else:
        lifecycle.mark_planned(session, request=request, actor=SYSTEM_ACTOR, summary=summary)
    return request.status
