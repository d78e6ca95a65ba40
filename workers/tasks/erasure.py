"""Erasure request tasks. Each re-reads its row: running twice is harmless."""

from __future__ import annotations

import uuid

import structlog

from app.core.broker import PLAN_ERASURE_REQUEST
from app.core.db import get_sessionmaker
from app.erasure.planning import plan_request
from workers.celery_app import celery_app

log = structlog.get_logger(__name__)


@celery_app.task(name=PLAN_ERASURE_REQUEST, autoretry_for=(ConnectionError,), max_retries=5)
def plan_erasure_request(request_id: str) -> str:
    with get_sessionmaker()() as session:
        status = plan_request(session, request_id=uuid.UUID(request_id))
        session.commit()
    log.info("erasure_request_planned", erasure_request_id=request_id, status=status)
    return status
