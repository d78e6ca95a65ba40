"""The purge sweeper as a task: after every activation and on beat. Running twice is harmless:
each item is deleted and confirmed once, and requests re-check their own state."""

from __future__ import annotations

from app.core.broker import SCAN_ORPHANS, SWEEP_PURGE
from app.core.db import get_sessionmaker
from app.erasure.progress import after_purge
from workers.celery_app import celery_app
from workers.pipeline.orphans import scan_orphans
from workers.pipeline.sweeper import sweep


@celery_app.task(name=SWEEP_PURGE)
def sweep_purge() -> int:
    result = sweep()
    if result.job_ids or result.request_ids:
        with get_sessionmaker()() as session:
            after_purge(session, job_ids=result.job_ids, request_ids=result.request_ids)
            session.commit()
    return result.confirmed


@celery_app.task(name=SCAN_ORPHANS)
def scan_orphan_artifacts() -> dict[str, int]:
    return scan_orphans()
