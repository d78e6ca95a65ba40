"""Jobs as rows: creation, batching, claiming under a lease, stages, heartbeats, and their end.

A job is claimed by the worker that moves it from `pending` to `running` and holds a lease
renewed by heartbeats. A lease that expires means the worker died: the reconciler puts the job
back to `pending` (up to `max_attempts` runs) and rings the doorbell again.

Every change that other domains care about (claimed, a new stage, succeeded, failed) is
announced to the listeners registered with `on_job_change`, in the same transaction. That is
the one hook from jobs to the requests they carry out.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.audit.service import SYSTEM_ACTOR, append_event
from app.core.auth import ApiClient
from app.core.db import utcnow
from app.core.errors import NotFound, ProblemError
from app.core.pagination import newest_first
from app.jobs.enums import ACTIVE_JOB_STATUSES, JobChange, JobKind, JobStage, JobStatus
from app.jobs.models import Job, JobRequest
from app.jobs.schemas import JobOut, JobSummary

JobListener = Callable[[Session, Job, JobChange], None]
_listeners: list[JobListener] = []


def on_job_change(listener: JobListener) -> JobListener:
    """Register `listener(session, job, change)`, called after each change of a job's status or
    stage."""
    if listener not in _listeners:
        _listeners.append(listener)
    return listener


def remove_job_listener(listener: JobListener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def job_listeners() -> tuple[JobListener, ...]:
    return tuple(_listeners)


def _changed(session: Session, job: Job, change: JobChange) -> None:
    session.flush()
    for listener in _listeners:
        listener(session, job, change)


def _audit(session: Session, job: Job, action: str, **data: Any) -> None:
    append_event(
        session,
        actor=SYSTEM_ACTOR,
        action=f"job.{action}",
        entity_type="job",
        entity_id=str(job.id),
        data={"model_id": str(job.model_id), "kind": job.kind, **data},
    )


def create_train_job(
    session: Session, *, model_id: uuid.UUID, client_id: uuid.UUID, max_attempts: int
) -> Job:
    busy = session.scalar(
        select(Job.id).where(Job.model_id == model_id, Job.status.in_(ACTIVE_JOB_STATUSES))
    )
    if busy is not None:
        raise ProblemError(
            409,
            "This model already has a job pending or running",
            slug="model-busy",
            job_id=str(busy),
        )
    job = Job(
        kind=JobKind.TRAIN,
        model_id=model_id,
        client_id=client_id,
        status=JobStatus.PENDING,
        max_attempts=max_attempts,
    )
    session.add(job)
    session.flush()
    _audit(session, job, "created")
    return job


def attach_request(
    session: Session,
    *,
    model_id: uuid.UUID,
    client_id: uuid.UUID | None,
    request_id: uuid.UUID,
    attempt: int,
    window: timedelta,
    max_attempts: int,
    kind: JobKind = JobKind.UNLEARN,
    not_before: datetime | None = None,
) -> Job:
    """Add a request's attempt to the model's next (pending) job of `kind` (unlearn or
    mitigate), creating it if needed: requests for one model batch."""
    for _ in range(3):
        job = session.scalar(
            select(Job)
            .where(
                Job.model_id == model_id,
                Job.kind == kind,
                Job.status == JobStatus.PENDING,
            )
            .with_for_update()
        )
        if job is None:
            job = Job(
                kind=kind,
                model_id=model_id,
                client_id=client_id,
                status=JobStatus.PENDING,
                not_before=not_before or utcnow() + window,
                max_attempts=max_attempts,
            )
            try:
                with session.begin_nested():
                    session.add(job)
                    session.flush()
            except IntegrityError:  # another planner created it first: join that one
                continue
            _audit(session, job, "created")
        link = session.get(JobRequest, (job.id, request_id))
        if link is None:
            session.add(JobRequest(job_id=job.id, request_id=request_id, attempt=attempt))
        else:
            link.attempt = attempt
        session.flush()
        return job
    raise RuntimeError(f"could not find or create the model's pending {kind} job")


def schedule(session: Session, *, job: Job, not_before: datetime, trigger: str) -> None:
    """Set when a pending job may start (the erasure scheduler's decision, and why)."""
    if job.status == JobStatus.PENDING and job.not_before != not_before:
        job.not_before = not_before
        job.metrics = {**(job.metrics or {}), "scheduled_by": trigger}
        _audit(session, job, "scheduled", not_before=not_before.isoformat(), trigger=trigger)


def last_run(session: Session, *, model_id: uuid.UUID) -> timedelta | None:
    """How long the model's latest successful training or exact unlearning took."""
    row = session.execute(
        select(Job.started_at, Job.finished_at)
        .where(
            Job.model_id == model_id,
            Job.kind.in_([JobKind.TRAIN, JobKind.UNLEARN]),
            Job.status == JobStatus.SUCCEEDED,
        )
        .order_by(Job.finished_at.desc())
        .limit(1)
    ).first()
    if row is None or row.started_at is None or row.finished_at is None:
        return None
    run: timedelta = row.finished_at - row.started_at
    return run


def pending_job(session: Session, *, model_id: uuid.UUID, kind: JobKind) -> Job | None:
    return session.scalar(
        select(Job).where(
            Job.model_id == model_id, Job.kind == kind, Job.status == JobStatus.PENDING
        )
    )


def claim(session: Session, *, job_id: uuid.UUID, worker: str, lease: timedelta) -> Job | None:
    """Start a pending job whose time has come, if no other job of its model runs."""
    job = session.scalar(select(Job).where(Job.id == job_id).with_for_update())
    if job is None or job.status != JobStatus.PENDING or job.not_before > utcnow():
        return None
    other = session.scalar(
        select(Job.id).where(
            Job.model_id == job.model_id, Job.status == JobStatus.RUNNING, Job.id != job.id
        )
    )
    if other is not None:
        return None
    now = utcnow()
    job.status = JobStatus.RUNNING
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
    _changed(session, job, JobChange.CLAIMED)
    return job


def start_from(session: Session, *, job: Job, version_id: uuid.UUID | None) -> None:
    """Record the version an unlearning job starts from: the one active when it starts, so a
    job that waited behind another starts from that job's result."""
    job.base_version_id = version_id


def heartbeat(
    session: Session, *, job_id: uuid.UUID, lease: timedelta, progress: float | None = None
) -> None:
    values: dict[str, Any] = {"heartbeat_at": utcnow(), "lease_expires_at": utcnow() + lease}
    if progress is not None:
        values["progress"] = max(0.0, min(1.0, progress))
    session.execute(
        update(Job).where(Job.id == job_id, Job.status == JobStatus.RUNNING).values(**values)
    )


def get(session: Session, *, job_id: uuid.UUID) -> Job | None:
    return session.get(Job, job_id)


def running_job(session: Session, *, job_id: uuid.UUID) -> Job | None:
    job = session.get(Job, job_id)
    return job if job is not None and job.status == JobStatus.RUNNING else None


def enter_stage(
    session: Session, *, job_id: uuid.UUID, stage: JobStage, metrics: dict[str, Any] | None = None
) -> Job | None:
    """Move a running job to `stage` (merging `metrics` into its own); None if it is not
    running."""
    job = running_job(session, job_id=job_id)
    if job is None:
        return None
    job.stage = stage
    if metrics:
        job.metrics = {**(job.metrics or {}), **metrics}
    _changed(session, job, JobChange.STAGE)
    return job


def fall_back(
    session: Session, *, job_id: uuid.UUID, reason: str, figures: dict[str, Any]
) -> Job | None:
    """An approximate result failed its check: the job retrains from scratch instead."""
    job = running_job(session, job_id=job_id)
    if job is None:
        return None
    job.stage = JobStage.RETRAINING
    job.metrics = {**(job.metrics or {}), "approximate_attempt": figures, "fallback_reason": reason}
    _changed(session, job, JobChange.FALLBACK)
    return job


def succeed(
    session: Session, *, job: Job, result_version_id: uuid.UUID | None, metrics: dict[str, Any]
) -> None:
    job.status = JobStatus.SUCCEEDED
    job.stage = JobStage.DONE
    job.progress = 1.0
    job.result_version_id = result_version_id
    job.metrics = {**(job.metrics or {}), **metrics}
    job.finished_at = utcnow()
    job.lease_expires_at = None
    _audit(session, job, JobStatus.SUCCEEDED, result_version_id=str(result_version_id))
    _changed(session, job, JobChange.SUCCEEDED)


def add_metrics(session: Session, *, job_id: uuid.UUID, metrics: dict[str, Any]) -> None:
    """Merge figures learnt after the job finished (its version's quality, measured later)."""
    job = session.get(Job, job_id)
    if job is not None:
        job.metrics = {**(job.metrics or {}), **metrics}


def fail(session: Session, *, job: Job, reason: str) -> None:
    job.status = JobStatus.FAILED
    job.error = reason
    job.finished_at = utcnow()
    job.lease_expires_at = None
    _audit(session, job, JobStatus.FAILED, reason=reason)
    _changed(session, job, JobChange.FAILED)


def requeue(session: Session, *, job: Job, reason: str) -> None:
    job.status = JobStatus.PENDING
    job.stage = JobStage.REQUEUED
    job.not_before = utcnow()
    job.lease_expires_at = None
    _audit(session, job, JobStage.REQUEUED, reason=reason, attempts=job.attempts)


def expired(session: Session) -> list[Job]:
    return list(
        session.scalars(
            select(Job)
            .where(Job.status == JobStatus.RUNNING, Job.lease_expires_at < utcnow())
            .with_for_update(skip_locked=True)
        )
    )


def due_pending(session: Session) -> list[Job]:
    return list(
        session.scalars(
            select(Job)
            .where(Job.status == JobStatus.PENDING, Job.not_before <= utcnow())
            .order_by(Job.created_at)
        )
    )


def pending_of_model(session: Session, *, model_id: uuid.UUID) -> list[Job]:
    return list(
        session.scalars(
            select(Job).where(Job.model_id == model_id, Job.status == JobStatus.PENDING)
        )
    )


def models_pending(session: Session) -> set[uuid.UUID]:
    return set(session.scalars(select(Job.model_id).where(Job.status == JobStatus.PENDING)))


def models_running(session: Session) -> set[uuid.UUID]:
    return set(session.scalars(select(Job.model_id).where(Job.status == JobStatus.RUNNING)))


def is_training(session: Session, *, model_id: uuid.UUID) -> bool:
    """A training job of the model is pending or running."""
    return (
        session.scalar(
            select(Job.id).where(
                Job.model_id == model_id,
                Job.kind == JobKind.TRAIN,
                Job.status.in_(ACTIVE_JOB_STATUSES),
            )
        )
        is not None
    )


def request_ids(session: Session, *, job_id: uuid.UUID) -> list[uuid.UUID]:
    return list(
        session.scalars(
            select(JobRequest.request_id)
            .where(JobRequest.job_id == job_id)
            .order_by(JobRequest.request_id)
        )
    )


def request_attempts(session: Session, *, job_id: uuid.UUID) -> list[tuple[uuid.UUID, int]]:
    """The (request id, attempt) pairs a job serves."""
    rows = session.execute(
        select(JobRequest.request_id, JobRequest.attempt)
        .where(JobRequest.job_id == job_id)
        .order_by(JobRequest.request_id)
    )
    return [(request_id, attempt) for request_id, attempt in rows]


def jobs_of_request(session: Session, *, request_id: uuid.UUID, attempt: int) -> list[Job]:
    """The jobs that serve one attempt of a request."""
    return list(
        session.scalars(
            select(Job)
            .join(JobRequest, JobRequest.job_id == Job.id)
            .where(JobRequest.request_id == request_id, JobRequest.attempt == attempt)
            .order_by(Job.created_at)
        )
    )


def unfinished_by_request(
    session: Session, *, request_ids: list[uuid.UUID], kind: JobKind
) -> list[tuple[uuid.UUID, Job]]:
    """The pending or running jobs of `kind` that serve these requests."""
    rows = session.execute(
        select(JobRequest.request_id, Job)
        .join(Job, Job.id == JobRequest.job_id)
        .where(
            JobRequest.request_id.in_(request_ids),
            Job.kind == kind,
            Job.status.in_(ACTIVE_JOB_STATUSES),
        )
    )
    return [(request_id, job) for request_id, job in rows]


def summaries_by_request(
    session: Session, *, request_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[JobSummary]]:
    """Every unlearning job of each request (all attempts), in one query."""
    rows = session.execute(
        select(JobRequest.request_id, Job)
        .join(Job, Job.id == JobRequest.job_id)
        .where(JobRequest.request_id.in_(request_ids))
        .order_by(Job.created_at)
    )
    summaries: dict[uuid.UUID, list[JobSummary]] = {}
    for request_id, job in rows:
        summaries.setdefault(request_id, []).append(
            JobSummary(
                id=job.id,
                kind=JobKind(job.kind),
                model_id=job.model_id,
                status=JobStatus(job.status),
                stage=JobStage(job.stage),
                progress=round(job.progress, 3),
                link=f"/v1/jobs/{job.id}",
            )
        )
    return summaries


def list_jobs(
    session: Session,
    *,
    client: ApiClient,
    status: JobStatus | None,
    kind: JobKind | None,
    model_id: uuid.UUID | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Job], str | None]:
    """The caller's jobs (every client's for an admin), newest first."""
    query = select(Job)
    if not client.is_admin:
        query = query.where(Job.client_id == client.id)
    if status is not None:
        query = query.where(Job.status == status.value)
    if kind is not None:
        query = query.where(Job.kind == kind.value)
    if model_id is not None:
        query = query.where(Job.model_id == model_id)
    return newest_first(session, query, at=Job.created_at, id_=Job.id, cursor=cursor, limit=limit)


def get_job(session: Session, *, client: ApiClient, job_id: uuid.UUID) -> Job:
    job = session.get(Job, job_id)
    if job is None or (not client.is_admin and job.client_id != client.id):
        raise NotFound("Job")
    return job


def to_out(session: Session, job: Job) -> JobOut:
    out = JobOut.model_validate(job)
    out.request_ids = request_ids(session, job_id=job.id)
    return out
