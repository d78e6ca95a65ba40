"""Finishing a request whose exact jobs are all done: its data is purged at once (and scrubbed
from storage by the sweeper); once that and every artifact that held it are confirmed gone, its
certificate is signed and it completes."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from app.audit.certificates import issue_certificate
from app.audit.enums import Guarantee
from app.audit.service import SYSTEM_ACTOR, append_event
from app.core.broker import SWEEP_PURGE, enqueue_after_commit
from app.core.db import utcnow
from app.erasure import lifecycle
from app.erasure.models import ErasureRequest
from app.jobs.enums import JobKind
from app.jobs.models import Job
from app.jobs.service import request_ids
from app.lineage.service import purge_claimed, subject_identities
from app.registry import purge
from app.registry.enums import PurgeKind
from app.registry.purge import counts_for_job
from app.registry.versions import brief
from app.suppression.service import remember

APPROXIMATE_LIMITATIONS = (
    "The model was edited, not retrained. Its check (named in `verification`: a membership "
    "test, or for a language model a comparison of its answers with people it never saw) found "
    "that the erased records look like records it never saw, within the stated margin: "
    "statistical evidence for that check, not proof. A stronger attack may still find their "
    "influence."
)


def purge_data(session: Session, *, request: ErasureRequest) -> None:
    """Delete the request's records, features and identities once no model needs them, and
    have the sweeper scrub them from the database's storage (idempotent). The identities the
    request named, and every other one its people were known by, go on the suppression list:
    records for them are refused from now on, and never trained on."""
    if request.data_purged_at is not None:
        return
    subject_ids = [uuid.UUID(s) for s in (request.plan or {}).get("subject_ids", [])]
    erased = {(i["type"], i["hash"]) for i in request.identities}
    erased.update(subject_identities(session, subject_ids=subject_ids))
    deleted, subjects_deleted = purge_claimed(
        session, request_id=request.id, subject_ids=subject_ids
    )
    suppressed = remember(session, identities=erased, request_id=request.id)
    counts = {"records_deleted": deleted, "subjects_deleted": subjects_deleted}
    request.data_purged_at = utcnow()
    # The subjects' ids go with them: the plan keeps only counts of what it found.
    kept = {k: v for k, v in (request.plan or {}).items() if k != "subject_ids"}
    request.plan = {**kept, "purged": counts}
    append_event(
        session,
        actor=SYSTEM_ACTOR,
        action="erasure_request.data_purged",
        entity_type="erasure_request",
        entity_id=str(request.id),
        data={**counts, "identities_suppressed": suppressed},
    )
    purge.record(session, kind=PurgeKind.DATABASE, key="erased-rows", request_id=request.id)
    enqueue_after_commit(session, SWEEP_PURGE, args=[], dedupe_key=SWEEP_PURGE)


def finalize(
    session: Session, *, request: ErasureRequest, jobs: list[Job], reason: str | None = None
) -> None:
    """Sign the certificate and complete the request: its data and every artifact that held
    it are confirmed gone."""
    counts = (request.plan or {}).get("purged") or {"records_deleted": 0, "subjects_deleted": 0}
    records_by_model = {
        m["model_id"]: m.get("records") for m in (request.plan or {}).get("models_affected", [])
    }
    mitigations = {j.model_id: j for j in jobs if j.kind == JobKind.MITIGATE}
    models = [
        _model_claims(
            session,
            job,
            records=records_by_model.get(str(job.model_id)),
            mitigation=mitigations.get(job.model_id),
        )
        for job in jobs
        if job.kind != JobKind.MITIGATE
    ]
    exact = all(m["exact"] for m in models)
    guarantee = Guarantee.EXACT if exact else Guarantee.APPROXIMATE
    issue_certificate(
        session,
        request_id=request.id,
        subject_hashes=[i["hash"] for i in request.identities],
        received_at=request.received_at,
        records_erased=counts["records_deleted"],
        models=models,
        data_purge={**counts, "storage_scrubbed": True},
        guarantee=guarantee,
        mitigated_at=request.mitigated_at,
    )
    lifecycle.complete(
        session,
        request=request,
        actor=SYSTEM_ACTOR,
        summary={
            "records_erased": counts["records_deleted"],
            "models": len(models),
            "guarantee": guarantee,
        },
        reason=reason,
    )


# The pooled test's score percentiles and the per-record gate's record ids, scores and counts.
PER_RECORD_FIGURES = frozenset(
    {"percentiles", "record_ids", "record_z", "record_unseen_references"}
)


def _without_per_record_scores(figures: Any) -> Any:
    """Certificates carry the test's summary, not a score for each erased record."""
    if isinstance(figures, dict):
        return {
            k: _without_per_record_scores(v)
            for k, v in figures.items()
            if k not in PER_RECORD_FIGURES
        }
    return figures


def _model_claims(
    session: Session, job: Job, *, records: int | None, mitigation: Job | None
) -> dict[str, Any]:
    """What was done to one model for this request. `records` is this request's own records
    in the model; the job's figures (`batch`) cover every request it carried."""
    new = brief(session, version_id=job.result_version_id)
    old = brief(session, version_id=job.base_version_id)
    metrics = job.metrics or {}
    claims: dict[str, Any] = {
        "model_id": str(job.model_id),
        "job_id": str(job.id),
        "records": records,
        "old_version": {"id": str(old.id), "number": old.number} if old else None,
        "new_version": {"id": str(new.id), "number": new.number} if new else None,
        "method": new.method if new else metrics.get("method"),
        "exact": new.exact if new else True,
        "verification": _without_per_record_scores(metrics.get("verification")),
        "batch": {
            "requests": len(request_ids(session, job_id=job.id)),
            "erased_records": (metrics.get("verification") or {}).get("erased_records"),
        },
        "purge": counts_for_job(session, job_id=job.id),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }
    if not claims["exact"]:
        claims["limitations"] = APPROXIMATE_LIMITATIONS
    if mitigation is not None and mitigation.result_version_id is not None:
        claims["mitigation"] = _mitigation_claims(session, mitigation)
    return claims


def _mitigation_claims(session: Session, mitigation: Job) -> dict[str, Any]:
    """The mitigation that stopped the model exposing the person before this erasure; an edit
    says that it only suppressed answers (`effect`, `limitations`)."""
    version = brief(session, version_id=mitigation.result_version_id)
    claims: dict[str, Any] = {
        "job_id": str(mitigation.id),
        "version_id": str(mitigation.result_version_id),
        "method": version.method if version else None,
        "finished_at": mitigation.finished_at.isoformat() if mitigation.finished_at else None,
    }
    verification = ((version.metrics or {}) if version else {}).get("verification") or {}
    if verification.get("effect") == "suppression":
        claims["effect"] = "suppression"
        claims["limitations"] = verification.get("limitations")
    return claims
