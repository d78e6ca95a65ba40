"""Jobs as rows: creation, batching, claiming under a lease, heartbeats, and their end.

A job is claimed by the worker that moves it from `pending` to `running` and holds a lease
renewed by heartbeats. A lease that expires means the worker died: the reconciler puts the job
back to `pending` (up to `max_attempts` runs) and rings the doorbell again.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.audit.service import SYSTEM_ACTOR, append_event
from app.core.auth import ApiClient
from app.core.db import utcnow
from app.core.errors import NotFound, ProblemError
from app.jobs.models import Job, JobRequest
from app.jobs.schemas import JobOut
from app.registry.models import MlModel

PENDING, RUNNING, SUCCEEDED, FAILED = "pending", "running", "succeeded", "failed"
TRAIN, UNLEARN = "train", "unlearn"


def _audit(session: Session, job: Job, action: str, **data: Any) -> None:
    append_event(
        session,
        actor=SYSTEM_ACTOR,
        action=f"job.{action}",
        entity_type="job",
        entity_id=str(job.id),
        data={"model_id": str(job.model_id), "kind": job.kind, **data},
    )


def create_train_job(session: Session, *, model: MlModel, max_attempts: int) -> Job:
    busy = session.scalar(
        select(Job.id).where(Job.model_id == model.id, Job.status.in_([PENDING, RUNNING]))
    )
    if busy is not None:
        raise ProblemError(
            409,
            "This model already has a job pending or running",
            slug="model-busy",
            job_id=str(busy),
        )
    job = Job(kind=TRAIN, model_id=model.id, status=PENDING, max_attempts=max_attempts)
    session.add(job)
    session.flush()
    _audit(session, job, "created")
    return job


def attach_request(
    session: Session,
    *,
    model_id: uuid.UUID,
    request_id: uuid.UUID,
    window: timedelta,
    max_attempts: int,
) -> Job:
    """Add a request to the model's next (pending) unlearning job, creating it if needed."""
    for _ in range(3):
        job = session.scalar(
            select(Job)
            .where(Job.model_id == model_id, Job.kind == UNLEARN, Job.status == PENDING)
            .with_for_update()
        )
        if job is None:
            job = Job(
                kind=UNLEARN,
                model_id=model_id,
                status=PENDING,
                not_before=utcnow() + window,
                max_attempts=max_attempts,
            )
            try:
                with session.begin_nested():
                    session.add(job)
                    session.flush()
            except IntegrityError:  # another planner created it first: join that one
                continue
            _audit(session, job, "created")
        if session.get(JobRequest, (job.id, request_id)) is None:
            session.add(JobRequest(job_id=job.id, request_id=request_id))
            session.flush()
        return job
    raise RuntimeError("could not find or create the model's pending unlearning job")


def claim(session: Session, *, job_id: uuid.UUID, worker: str, lease: timedelta) -> Job | None:
    """Start a pending job whose time has come, if no other job of its model runs."""
    job = session.scalar(select(Job).where(Job.id == job_id).with_for_update())
    if job is None or job.status != PENDING or job.not_before > utcnow():
        return None
    other = session.scalar(
        select(Job.id).where(Job.model_id == job.model_id, Job.status == RUNNING, Job.id != job.id)
    )
    if other is not None:
        return None
    now = utcnow()
    job.status = RUNNING
    job.attempts += 1
    job.worker = worker
    job.started_at = job.started_at or now
    job.heartbeat_at = now
    job.lease_expires_at = now + lease
    job.error = None
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        return None
    _audit(session, job, "started", attempt=job.attempts, worker=worker)
    return job


def heartbeat(
    session: Session,
    *,
    job_id: uuid.UUID,
    lease: timedelta,
    progress: float | None = None,
    stage: str | None = None,
) -> None:
    values: dict[str, Any] = {"heartbeat_at": utcnow(), "lease_expires_at": utcnow() + lease}
    if progress is not None:
        values["progress"] = max(0.0, min(1.0, progress))
    if stage is not None:
        values["stage"] = stage
    session.execute(update(Job).where(Job.id == job_id, Job.status == RUNNING).values(**values))


def succeed(
    session: Session, *, job: Job, result_version_id: uuid.UUID | None, metrics: dict[str, Any]
) -> None:
    job.status = SUCCEEDED
    job.stage = "done"
    job.progress = 1.0
    job.result_version_id = result_version_id
    job.metrics = {**(job.metrics or {}), **metrics}
    job.finished_at = utcnow()
    job.lease_expires_at = None
    _audit(session, job, "succeeded", result_version_id=str(result_version_id))


def fail(session: Session, *, job: Job, reason: str) -> None:
    job.status = FAILED
    job.error = reason
    job.finished_at = utcnow()
    job.lease_expires_at = None
    _audit(session, job, "failed", reason=reason)


def requeue(session: Session, *, job: Job, reason: str) -> None:
    job.status = PENDING
    job.stage = "requeued"
    job.not_before = utcnow()
    job.lease_expires_at = None
    _audit(session, job, "requeued", reason=reason, attempts=job.attempts)


def expired(session: Session) -> list[Job]:
    return list(
        session.scalars(
            select(Job)
            .where(Job.status == RUNNING, Job.lease_expires_at < utcnow())
            .with_for_update(skip_locked=True)
        )
    )


def due_pending(session: Session) -> list[Job]:
    return list(
        session.scalars(
            select(Job)
            .where(Job.status == PENDING, Job.not_before <= utcnow())
            .order_by(Job.created_at)
        )
    )


def request_ids(session: Session, *, job_id: uuid.UUID) -> list[uuid.UUID]:
    return list(
        session.scalars(
            select(JobRequest.request_id)
            .where(JobRequest.job_id == job_id)
            .order_by(JobRequest.request_id)
        )
    )


def jobs_of_request(session: Session, *, request_id: uuid.UUID) -> list[Job]:
    return list(
        session.scalars(
            select(Job)
            .join(JobRequest, JobRequest.job_id == Job.id)
            .where(JobRequest.request_id == request_id)
            .order_by(Job.created_at)
        )
    )


def get_job(session: Session, *, client: ApiClient, job_id: uuid.UUID) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound("Job")
    model = session.get(MlModel, job.model_id)
    if not client.is_admin and (model is None or model.client_id != client.id):
        raise NotFound("Job")
    return job


def to_out(session: Session, job: Job) -> JobOut:
    out = JobOut.model_validate(job)
    out.request_ids = request_ids(session, job_id=job.id)
    return out
