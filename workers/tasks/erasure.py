"""Erasure request tasks. Each re-reads its row: running twice is harmless."""

from __future__ import annotations

import uuid
from datetime import timedelta

import structlog

from app.core.broker import PLAN_ERASURE_REQUEST, RUN_JOB, TRAINING_QUEUE, enqueue
from app.core.config import get_settings
from app.core.db import get_sessionmaker
from app.erasure.planning import plan_request
from workers.celery_app import celery_app

log = structlog.get_logger(__name__)


@celery_app.task(name=PLAN_ERASURE_REQUEST, autoretry_for=(ConnectionError,), max_retries=5)
def plan_erasure_request(request_id: str) -> str:
    settings = get_settings()
    window = timedelta(seconds=settings.batching_window_seconds)
    with get_sessionmaker()() as session:
        outcome = plan_request(
            session,
            request_id=uuid.UUID(request_id),
            window=window,
            max_attempts=settings.job_max_attempts,
        )
        session.commit()
    for job_id in outcome.jobs_to_start:
        enqueue(
            RUN_JOB,
            args=[str(job_id)],
            queue=TRAINING_QUEUE,
            countdown=settings.batching_window_seconds,
        )
    log.info("erasure_request_planned", erasure_request_id=request_id, status=outcome.status)
    return outcome.status
