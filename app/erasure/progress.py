"""A request's status follows the jobs of its current attempt, and only from here.

`next_step` is the one rule (a pure function, tested over a table); `follow_job` applies it to
every request a job serves whenever the jobs domain announces a change of that job, and writes
each request's own record of what happened to it (a model mitigated or erased, a fallback). A
request whose exact jobs all succeeded is completed by `app.erasure.completion.finalize`.

Two kinds of job serve a request. An `unlearn` job is exact erasure (or, for a model whose
operator chose `finalize: approximate`, the approximate result that closes it). A `mitigate`
job applies approximate unlearning at once so the active model stops exposing the person; it
never closes a request, and when it fails or its check does, the model's exact retrain is
brought forward.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.service import SYSTEM_ACTOR, append_event
from app.core.config import get_settings
from app.erasure import lifecycle, scheduler
from app.erasure.completion import finalize, purge_data
from app.erasure.enums import RequestStatus
from app.erasure.models import ErasureRequest
from app.jobs import service as jobs_service
from app.jobs.enums import JobChange, JobKind, JobStage, JobStatus
from app.jobs.models import Job
from app.registry import purge
from app.registry.models import MlModel
from app.registry.service import mitigates

S = RequestStatus
FOLLOWS_JOBS = frozenset({S.PLANNED, S.RUNNING, S.VERIFYING, S.MITIGATED})
NO_MODEL_REASON = "no model was trained on the records"


@dataclass(frozen=True)
class JobView:
    """What the rule needs to know of one job."""

    id: uuid.UUID
    status: JobStatus
    stage: JobStage
    kind: JobKind
    model_id: uuid.UUID
    error: str | None = None
    fallback_reason: str | None = None
    has_result: bool = False
    purged: bool = True  # every file its activation must delete is confirmed gone

    @classmethod
    def of(cls, job: Job, *, purged: bool = True) -> JobView:
        return cls(
            id=job.id,
            status=JobStatus(job.status),
            stage=JobStage(job.stage),
            kind=JobKind(job.kind),
            model_id=job.model_id,
            error=job.error,
            fallback_reason=(job.metrics or {}).get("fallback_reason"),
            has_result=job.result_version_id is not None,
            purged=purged,
        )

    @property
    def verified_or_verifying(self) -> bool:
        return self.status == JobStatus.SUCCEEDED or (
            self.status == JobStatus.RUNNING and self.stage == JobStage.VERIFYING
        )

    @property
    def mitigated(self) -> bool:
        return (
            self.kind == JobKind.MITIGATE and self.status == JobStatus.SUCCEEDED and self.has_result
        )


@dataclass(frozen=True)
class Step:
    to: RequestStatus
    reason: str | None = None
    event: str | None = None


def _target(jobs: Sequence[JobView], *, purge_pending: bool) -> Step | None:
    """The status the jobs call for, regardless of where the request is now."""
    exact = [j for j in jobs if j.kind != JobKind.MITIGATE]
    if not exact:
        return None
    failed = next((j for j in exact if j.status == JobStatus.FAILED), None)
    if failed is not None:
        return Step(S.FAILED, reason=f"unlearning job {failed.id} failed: {failed.error}")
    if all(j.status == JobStatus.SUCCEEDED for j in exact):
        if purge_pending or not all(j.purged for j in exact):
            return Step(S.VERIFYING)  # the certificate waits until the purge is confirmed
        return Step(S.COMPLETED)
    if all(j.verified_or_verifying for j in exact) and not any(
        j.kind == JobKind.MITIGATE and j.status == JobStatus.RUNNING for j in jobs
    ):
        return Step(S.VERIFYING)
    erased = {j.model_id for j in exact if j.status == JobStatus.SUCCEEDED}
    mitigated = {j.model_id for j in jobs if j.mitigated}
    if mitigated and {j.model_id for j in exact} <= erased | mitigated:
        return Step(S.MITIGATED)
    if any(j.status == JobStatus.RUNNING for j in jobs):
        return Step(S.RUNNING)
    return None


def next_step(
    current: RequestStatus, jobs: Sequence[JobView], *, purge_pending: bool = False
) -> Step | None:
    """The request's next move given its current attempt's jobs, or None to stay.

    A failed exact job fails the request. It completes once every exact job succeeded
    (straight from `planned` when no model needed unlearning); it verifies once every exact
    job verifies or is done; it is mitigated once every model either is erased or has an
    approximate result active; it runs while any job runs. It completes only once every file
    its exact jobs must delete, and its own rows' storage scrub (`purge_pending`), are
    confirmed gone; until then it stays `verifying`. Back from `verifying` to `running`
    is a fallback when a job gave up on its approximate result. A mitigated request stays so
    while its exact retrain waits or runs.
    """
    if current not in FOLLOWS_JOBS:
        return None
    if not jobs:
        if current == S.PLANNED and not purge_pending:
            return Step(S.COMPLETED, reason=NO_MODEL_REASON)
        return None
    target = _target(jobs, purge_pending=purge_pending)
    if target is None or target.to == current:
        return None
    if target.to == S.FAILED:
        return target
    if current == S.PLANNED:
        return Step(S.RUNNING)
    if target.to == S.COMPLETED and current == S.RUNNING:
        return Step(S.VERIFYING)  # every exact job verified before it succeeded
    if target.to == S.RUNNING:
        if current == S.MITIGATED:
            return None
        reason = next((j.fallback_reason for j in jobs if j.fallback_reason), None)
        return Step(S.RUNNING, reason=reason, event="fallback" if reason else None)
    return target


def advance(session: Session, *, request: ErasureRequest) -> None:
    """Apply `next_step` until the request's status matches its jobs. Once no model needs
    the request's records any more, they are purged."""
    for _ in range(len(FOLLOWS_JOBS) + 1):
        jobs = jobs_service.jobs_of_request(session, request_id=request.id, attempt=request.attempt)
        exact = [j for j in jobs if j.kind != JobKind.MITIGATE]
        if RequestStatus(request.status) in FOLLOWS_JOBS and all(
            j.status == JobStatus.SUCCEEDED for j in exact
        ):
            purge_data(session, request=request)
        outstanding = purge.jobs_outstanding(session, job_ids=[j.id for j in exact])
        step = next_step(
            RequestStatus(request.status),
            [JobView.of(j, purged=j.id not in outstanding) for j in jobs],
            purge_pending=purge.request_outstanding(session, request_id=request.id),
        )
        if step is None:
            return
        if step.to == S.COMPLETED:
            finalize(session, request=request, jobs=jobs, reason=step.reason)
            return
        lifecycle.advance(
            session,
            request=request,
            to=step.to,
            actor=SYSTEM_ACTOR,
            reason=step.reason,
            event=step.event,
        )


def _record(session: Session, request: ErasureRequest, action: str, **data: object) -> None:
    append_event(
        session,
        actor=SYSTEM_ACTOR,
        action=f"erasure_request.{action}",
        entity_type="erasure_request",
        entity_id=str(request.id),
        data=data,
    )


def _note(session: Session, request: ErasureRequest, job: Job, change: JobChange) -> None:
    """The request's own trail of what a job did for it (its status events come from the
    lifecycle)."""
    model = {"model_id": str(job.model_id), "job_id": str(job.id)}
    metrics = job.metrics or {}
    if change == JobChange.FALLBACK and request.status != S.VERIFYING:
        # A verifying request records its fallback as its transition back to `running`.
        _record(session, request, "fallback", reason=metrics.get("fallback_reason"), **model)
    elif job.kind == JobKind.MITIGATE and change == JobChange.SUCCEEDED and job.result_version_id:
        _record(session, request, "model_mitigated", version_id=str(job.result_version_id), **model)
    elif _mitigation_failed(job, change):
        reason = job.error or metrics.get("not_mitigated_reason") or "no approximate result"
        _record(session, request, "mitigation_failed", reason=reason, **model)
    elif job.kind == JobKind.UNLEARN and change == JobChange.SUCCEEDED:
        version = str(job.result_version_id) if job.result_version_id else None
        _record(session, request, "model_erased", version_id=version, **model)


def _mitigation_failed(job: Job, change: JobChange) -> bool:
    """The approximate result could not be applied (not: there was nothing to mitigate)."""
    return job.kind == JobKind.MITIGATE and (
        change == JobChange.FAILED
        or (change == JobChange.SUCCEEDED and (job.metrics or {}).get("mitigation") == "failed")
    )


@jobs_service.on_job_change
def follow_job(session: Session, job: Job, change: JobChange) -> None:
    """Bring every request this job serves (in its current attempt) up to date."""
    if _mitigation_failed(job, change):
        # Without an approximate result the person stays exposed: the exact retrain goes now.
        scheduler.reschedule(session, model_id=job.model_id, bring_forward=True)
    model = session.get(MlModel, job.model_id)
    if job.kind == JobKind.UNLEARN and change == JobChange.SUCCEEDED and model and mitigates(model):
        window = timedelta(seconds=get_settings().batching_window_seconds)
        scheduler.remitigate_waiting(session, model_id=job.model_id, window=window)
    for request_id, attempt in jobs_service.request_attempts(session, job_id=job.id):
        request = session.scalar(
            select(ErasureRequest).where(ErasureRequest.id == request_id).with_for_update()
        )
        if request is not None and request.attempt == attempt:
            _note(session, request, job, change)
            advance(session, request=request)


def after_purge(session: Session, *, job_ids: set[uuid.UUID], request_ids: set[uuid.UUID]) -> None:
    """The sweeper confirmed items of these jobs and requests: the requests waiting on them
    may complete now."""
    waiting = set(request_ids)
    for job_id in job_ids:
        waiting.update(r for r, _ in jobs_service.request_attempts(session, job_id=job_id))
    for request_id in sorted(waiting, key=str):
        request = session.scalar(
            select(ErasureRequest).where(ErasureRequest.id == request_id).with_for_update()
        )
        if request is not None:
            advance(session, request=request)
