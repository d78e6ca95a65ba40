"""Database sessions for worker code, and a job's heartbeat.

Each use opens its own short transaction: a long computation never holds one open.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy.orm import Session

from app.core.config import get_settings
from app.core.db import get_sessionmaker
from app.jobs import service as jobs_service
from app.jobs.enums import JobStage

HEARTBEAT_EVERY_SECONDS = 1.0


@contextmanager
def db_session() -> Iterator[Session]:
    with get_sessionmaker()() as session:
        yield session


def enter_stage(job_id: uuid.UUID, *, stage: JobStage) -> None:
    """Move a running job to `stage`, in its own transaction (its requests follow)."""
    with db_session() as session:
        jobs_service.enter_stage(session, job_id=job_id, stage=stage)
        session.commit()


class Heartbeat:
    """Renews the job's lease and reports progress, at most once a second."""

    def __init__(self, *, job_id: uuid.UUID, start: float = 0.0, span: float = 1.0) -> None:
        self.job_id = job_id
        self.start = start
        self.span = span
        self._last = 0.0
        self.lease = timedelta(seconds=get_settings().job_lease_seconds)

    def beat(self, *, fraction: float | None = None, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < HEARTBEAT_EVERY_SECONDS:
            return
        self._last = now
        progress = None if fraction is None else self.start + self.span * fraction
        with db_session() as session:
            jobs_service.heartbeat(session, job_id=self.job_id, lease=self.lease, progress=progress)
            session.commit()
