"""The last step of every unlearning job, in one transaction: the new version active, older
versions and checkpoints that hold erased records purged, the job done, and the requests whose
jobs are all done completed. The artifacts are deleted after the commit."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np

from app.erasure import completion
from app.jobs import service as jobs
from app.jobs.models import Job
from app.registry.models import MlModel
from workers.pipeline.context import db_session
from workers.pipeline.jobcontext import JobContext
from workers.pipeline.versions import execute_purge, plan_purge, record_version


def enter_stage(job_id: uuid.UUID, *, stage: str) -> None:
    """Move the job to `stage`; its requests follow (verifying once all their jobs verify)."""
    with db_session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        job.stage = stage
        if stage == "verifying":
            completion.mark_verifying(session, request_ids=jobs.request_ids(session, job_id=job_id))
        session.commit()


def activate(
    *,
    ctx: JobContext,
    forget_ids: np.ndarray,
    method: str,
    exact: bool,
    manifest: dict[str, Any],
    trained_records: int,
    metrics: dict[str, Any],
    checkpoint_rows: list[tuple[str, int, int]],
    version_id: uuid.UUID | None = None,
) -> list[uuid.UUID]:
    """Returns the ids of the requests completed."""
    with db_session() as session:
        job = session.get(Job, ctx.job_id)
        model = session.get(MlModel, ctx.model.id)
        assert job is not None and model is not None
        version = record_version(
            session,
            model=model,
            version_id=version_id or uuid.uuid4(),
            parent_id=ctx.base.id,
            method=method,
            exact=exact,
            manifest=manifest,
            trained_records=trained_records,
            metrics=metrics,
            job_id=job.id,
            checkpoint_keys=checkpoint_rows,
        )
        purge = plan_purge(session, model=model, erased_record_ids=forget_ids, keep=version.id)
        jobs.succeed(
            session,
            job=job,
            result_version_id=version.id,
            metrics={**metrics, "method": method, "purge": purge.counts()},
        )
        completed = completion.after_jobs(session, request_ids=ctx.request_ids)
        session.commit()
    execute_purge(model_id=ctx.model.id, plan=purge)
    return completed
