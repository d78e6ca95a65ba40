"""The last step of every unlearning job, in one transaction: the new version active (never held:
a fall in test accuracy is flagged instead), older and held versions and checkpoints that hold
erased records marked purged and their files recorded in the purge outbox, the job done (and with
it, through the jobs domain's hook, its requests move on). The sweeper deletes the files after the
commit; the requests complete once they are gone."""

from __future__ import annotations

import numpy as np

from app.core.broker import SWEEP_PURGE, enqueue_after_commit
from app.jobs import service as jobs_service
from app.registry import holds, versions
from app.registry.versions import NewVersion
from workers.pipeline.job_context import JobContext
from workers.pipeline.purge import mark_tainted
from workers.pipeline.session import db_session


def activate(*, ctx: JobContext, forget_ids: np.ndarray, new: NewVersion) -> None:
    # A held version may have trained on records of these requests newer than the base version's
    # (the forget set stops at the base's last record): it is purged for those too.
    claimed = ctx.records(split="train", of_requests=ctx.request_ids, with_features=False)
    with db_session() as session:
        job = jobs_service.running_job(session, job_id=ctx.job_id)
        if job is None:
            raise RuntimeError("the job is no longer running; its result is discarded")
        version = versions.activate(session, model_id=ctx.model.id, job_id=job.id, new=new)
        purge = mark_tainted(
            session,
            model_id=ctx.model.id,
            erased_record_ids=np.union1d(forget_ids, claimed.record_ids),
            keep=version.id,
            job_id=job.id,
        )
        metrics = {**new.metrics, "method": new.method, "purge": purge.counts()}
        alert = holds.flag_quality_drop(session, version=version)
        if alert is not None:
            metrics["quality_alert"] = alert
        jobs_service.succeed(session, job=job, result_version_id=version.id, metrics=metrics)
        enqueue_after_commit(session, SWEEP_PURGE, args=[], dedupe_key=SWEEP_PURGE)
        session.commit()
