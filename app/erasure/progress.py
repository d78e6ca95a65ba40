"""A request's status follows the jobs of its current attempt, and only from here.

`next_step` is the one rule (a pure function, tested over a table); `follow_job` applies it to
every request a job serves whenever the jobs domain announces a change of that job. A request
whose jobs all succeeded is completed by `app.erasure.completion.finalize`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.service import SYSTEM_ACTOR
from app.erasure import lifecycle
from app.erasure.completion import finalize
from app.erasure.enums import RequestStatus
from app.erasure.models import ErasureRequest
from app.jobs import service as jobs_service
from app.jobs.enums import JobStage, JobStatus
from app.jobs.models import Job

S = RequestStatus
FOLLOWS_JOBS = frozenset({S.PLANNED, S.RUNNING, S.VERIFYING})
NO_MODEL_REASON = "no model was trained on the records"


@dataclass(frozen=True)
class JobView:
    """What the rule needs to know of one job."""

    id: uuid.UUID
    status: JobStatus
    stage: JobStage
    error: str | None = None
    fallback_reason: str | None = None

    @classmethod
    def of(cls, job: Job) -> JobView:
        return cls(
            id=job.id,
            status=JobStatus(job.status),
            stage=JobStage(job.stage),
            error=job.error,
            fallback_reason=(job.metrics or {}).get("fallback_reason"),
        )

    @property
    def verified_or_verifying(self) -> bool:
        return self.status == JobStatus.SUCCEEDED or (
            self.status == JobStatus.RUNNING and self.stage == JobStage.VERIFYING
        )


@dataclass(frozen=True)
class Step:
    to: RequestStatus
    reason: str | None = None
    event: str | None = None


def next_step(current: RequestStatus, jobs: Sequence[JobView]) -> Step | None:
    """The request's next move given its current attempt's jobs, or None to stay.

    Any failed job fails the request. With every job done it completes (straight from
    `planned` when no model needed unlearning); it verifies once every job verifies or is done,
    and runs while any job runs. Back from `verifying` to `running` is a fallback when a job
    gave up on its approximate result.
    """
    if current not in FOLLOWS_JOBS:
        return None
    failed = next((j for j in jobs if j.status == JobStatus.FAILED), None)
    if failed is not None:
        return Step(S.FAILED, reason=f"unlearning job {failed.id} failed: {failed.error}")
    if not jobs:
        return Step(S.COMPLETED, reason=NO_MODEL_REASON) if current == S.PLANNED else None
    if all(j.verified_or_verifying for j in jobs):
        if current == S.PLANNED:
            return Step(S.RUNNING)
        if current == S.RUNNING:
            return Step(S.VERIFYING)
        return Step(S.COMPLETED) if all(j.status == JobStatus.SUCCEEDED for j in jobs) else None
    if not any(j.status == JobStatus.RUNNING for j in jobs) or current == S.RUNNING:
        return None
    if current == S.VERIFYING:
        reason = next((j.fallback_reason for j in jobs if j.fallback_reason), None)
        return Step(S.RUNNING, reason=reason, event="fallback" if reason else None)
    return Step(S.RUNNING)


def advance(session: Session, *, request: ErasureRequest) -> None:
    """Apply `next_step` until the request's status matches its jobs."""
    for _ in range(len(FOLLOWS_JOBS) + 1):
        jobs = jobs_service.jobs_of_request(session, request_id=request.id, attempt=request.attempt)
        step = next_step(RequestStatus(request.status), [JobView.of(j) for j in jobs])
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


@jobs_service.on_job_change
def follow_job(session: Session, job: Job) -> None:
    """Bring every request this job serves (in its current attempt) up to date."""
    for request_id, attempt in jobs_service.request_attempts(session, job_id=job.id):
        request = session.scalar(
            select(ErasureRequest).where(ErasureRequest.id == request_id).with_for_update()
        )
        if request is not None and request.attempt == attempt:
            advance(session, request=request)
