"""Ends of an approximate attempt that are not a new version: a mitigation that was not needed
or failed its check, and an erasure that falls back to retraining."""

from __future__ import annotations

import uuid
from typing import Any

from app.jobs import service as jobs_service
from workers.pipeline.session import db_session


def finish_without_version(
    job_id: uuid.UUID, *, mitigation: str, reason: str, figures: dict[str, Any] | None = None
) -> None:
    with db_session() as session:
        job = jobs_service.running_job(session, job_id=job_id)
        if job is not None:
            metrics = {"mitigation": mitigation, "not_mitigated_reason": reason, **(figures or {})}
            jobs_service.succeed(session, job=job, result_version_id=None, metrics=metrics)
        session.commit()


def fall_back(job_id: uuid.UUID, *, reason: str, figures: dict[str, Any]) -> None:
    with db_session() as session:
        jobs_service.fall_back(
            session,
            job_id=job_id,
            reason=f"approximate unlearning was not accepted ({reason}); retraining",
            figures=figures,
        )
        session.commit()
