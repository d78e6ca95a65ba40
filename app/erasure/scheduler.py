"""The erasure scheduler: when a model's next exact retrain starts.

For a model whose approximate result is only a mitigation, each request joins the model's
pending exact job, which is the batch: one retrain covers every request mitigated so far. It
starts as soon as one trigger fires: the batch reaches `exact_batch_size`; the oldest due date
comes within `exact_due_margin_hours` (which must cover a retrain's run time); the oldest request
has waited `exact_max_wait_hours`; or a mitigation failed (the person is still exposed). The
rule is a pure function, so the simulation in `bench/scheduler.py` runs exactly this code.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.core.broker import RUN_JOB, TRAINING_QUEUE, enqueue_after_commit
from app.core.config import Settings, get_settings
from app.core.db import utcnow
from app.erasure.models import ErasureRequest
from app.jobs import service as jobs_service
from app.jobs.enums import JobKind


class Trigger(StrEnum):
    BATCH_FULL = "batch_full"
    DUE_DATE = "due_date"
    MAX_WAIT = "max_wait"
    FALLBACK = "fallback"


@dataclass(frozen=True)
class Policy:
    batch_size: int
    due_margin: timedelta
    max_wait: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            batch_size=settings.exact_batch_size,
            due_margin=timedelta(hours=settings.exact_due_margin_hours),
            max_wait=timedelta(hours=settings.exact_max_wait_hours),
        )


@dataclass(frozen=True)
class Waiting:
    """A request in the batch: when it arrived and when it is due."""

    received_at: datetime
    due_at: datetime


@dataclass(frozen=True)
class Start:
    at: datetime
    trigger: Trigger


def exact_start(
    *, waiting: Sequence[Waiting], policy: Policy, bring_forward: bool = False
) -> Start | None:
    """When the batch's exact retrain should start (None for an empty batch). Adding a request
    never makes it later."""
    if not waiting:
        return None
    arrivals = sorted(w.received_at for w in waiting)
    if bring_forward:
        return Start(at=arrivals[0], trigger=Trigger.FALLBACK)
    candidates = [
        Start(at=min(w.due_at for w in waiting) - policy.due_margin, trigger=Trigger.DUE_DATE),
        Start(at=arrivals[0] + policy.max_wait, trigger=Trigger.MAX_WAIT),
    ]
    if len(arrivals) >= policy.batch_size:
        candidates.append(Start(at=arrivals[policy.batch_size - 1], trigger=Trigger.BATCH_FULL))
    return min(candidates, key=lambda start: start.at)


def remitigate_waiting(session: Session, *, model_id: uuid.UUID, window: timedelta) -> None:
    """A new exact version may have been trained on records of requests that joined the next
    batch while it ran, undoing their mitigation: give them a new mitigation job (it does
    nothing where the new version never saw their records)."""
    job = jobs_service.pending_job(session, model_id=model_id, kind=JobKind.UNLEARN)
    if job is None:
        return
    waiting = session.execute(
        select(ErasureRequest.id, ErasureRequest.attempt).where(
            ErasureRequest.id.in_(jobs_service.request_ids(session, job_id=job.id))
        )
    ).all()
    mitigation = None
    for request_id, attempt in waiting:
        mitigation = jobs_service.attach_request(
            session,
            model_id=model_id,
            client_id=job.client_id,
            request_id=request_id,
            attempt=attempt,
            window=window,
            max_attempts=job.max_attempts,
            kind=JobKind.MITIGATE,
        )
    if mitigation is not None:
        enqueue_after_commit(
            session,
            RUN_JOB,
            args=[str(mitigation.id)],
            queue=TRAINING_QUEUE,
            countdown=window.total_seconds(),
            dedupe_key=str(mitigation.id),
        )


def reschedule(session: Session, *, model_id: uuid.UUID, bring_forward: bool = False) -> None:
    """Set the start of the model's pending exact job from the requests it carries; ring the
    worker after the commit when it is due now."""
    job = jobs_service.pending_job(session, model_id=model_id, kind=JobKind.UNLEARN)
    if job is None:
        return
    request_ids = jobs_service.request_ids(session, job_id=job.id)
    rows = session.execute(
        select(ErasureRequest.received_at, ErasureRequest.due_at).where(
            ErasureRequest.id.in_(request_ids)
        )
    )
    waiting = [Waiting(received_at=r.received_at, due_at=r.due_at) for r in rows]
    start = exact_start(
        waiting=waiting, policy=Policy.from_settings(get_settings()), bring_forward=bring_forward
    )
    if start is None:
        return
    now = utcnow()
    at = max(start.at, now)
    if at < job.not_before:
        jobs_service.schedule(session, job=job, not_before=at, trigger=start.trigger)
    run = jobs_service.last_run(session, model_id=model_id) or timedelta(0)
    session.execute(
        update(ErasureRequest)
        .where(ErasureRequest.id.in_(request_ids))
        .values(exact_expected_at=job.not_before + run)
    )
    if job.not_before <= now:
        enqueue_after_commit(
            session, RUN_JOB, args=[str(job.id)], queue=TRAINING_QUEUE, dedupe_key=str(job.id)
        )
