"""Training and unlearning job tasks, the reconciler, and predictions.

Every task re-reads its rows and can run twice: claiming is a conditional update, finished
shards are skipped, and a finished job ignores late messages.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import timedelta
from typing import Any

import numpy as np
import structlog
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from app.core.broker import (
    EVALUATE_VERSION,
    FINISH_JOB,
    PLAN_ERASURE_REQUEST,
    PREDICT,
    RECONCILE,
    RUN_JOB,
    RUN_SHARD,
    TRAINING_QUEUE,
    enqueue,
)
from app.core.config import get_settings
from app.core.db import utcnow
from app.erasure.planning import left_unplanned
from app.jobs import service as jobs
from app.jobs.enums import JobKind, JobStage, JobStatus
from app.jobs.models import Job
from app.registry.base_models import CAUSAL_LM
from app.registry.enums import Strategy
from app.registry.models import MlModel, ModelVersion
from workers.celery_app import celery_app
from workers.pipeline.session import db_session

log = structlog.get_logger(__name__)
WORKER_NAME = f"{socket.gethostname()}:{os.getpid()}"
RING_AHEAD = timedelta(minutes=10)


def _lease() -> timedelta:
    return timedelta(seconds=get_settings().job_lease_seconds)


def _interrupted(exc: BaseException) -> bool:
    """The database connection was lost or the database refused the run for a while (a restart,
    a failover, a dropped connection, a deadlock): nothing is wrong with the job itself."""
    return isinstance(exc, OperationalError | InterfaceError) or bool(
        getattr(exc, "connection_invalidated", False)
    )


def _reason(exc: BaseException) -> str:
    """What a failed job's row and its request say. A database error's text holds the SQL
    statement and its parameters (record ids, identity hashes): only its kind is kept."""
    if isinstance(exc, SQLAlchemyError):
        return (
            f"{type(exc).__name__}: a database error; its statement is not kept, as it may "
            "hold personal data"
        )
    return f"{type(exc).__name__}: {exc}"[:2000]


def _fail(job_id: uuid.UUID, exc: BaseException) -> None:
    if _interrupted(exc):
        # Interrupted, not failed: the job keeps its lease, which runs out, and the reconciler
        # runs it again (within its attempts), as after a worker's crash.
        log.warning("job_interrupted", job_id=str(job_id), error_type=type(exc).__name__)
        return
    reason = _reason(exc)
    log.error("job_failed", job_id=str(job_id), error_type=type(exc).__name__)
    with db_session() as session:
        job = jobs.running_job(session, job_id=job_id)
        if job is None:
            return
        jobs.fail(session, job=job, reason=reason)
        model_id = job.model_id
        session.commit()
    _start_next(model_id)


def _start_next(model_id: uuid.UUID) -> None:
    with db_session() as session:
        pending = jobs.pending_of_model(session, model_id=model_id)
    for job in pending:
        wait = max(0.0, (job.not_before - utcnow()).total_seconds())
        if wait <= RING_AHEAD.total_seconds():  # later ones: the reconciler rings them when due
            enqueue(RUN_JOB, args=[str(job.id)], queue=TRAINING_QUEUE, countdown=wait)


@celery_app.task(name=RUN_JOB)
def run_job(job_id: str) -> str:
    from workers.pipeline import monolithic_unlearning, sisa_unlearning
    from workers.pipeline.training import run_training

    jid = uuid.UUID(job_id)
    with db_session() as session:
        job = jobs.claim(session, job_id=jid, worker=WORKER_NAME, lease=_lease())
        if job is None:
            waiting = jobs.get(session, job_id=jid)
            if waiting is not None and waiting.status == JobStatus.PENDING:
                early = (waiting.not_before - utcnow()).total_seconds()
                if early > 0:  # a countdown that ran out a moment early: come back on time
                    enqueue(RUN_JOB, args=[job_id], queue=TRAINING_QUEUE, countdown=early)
            return "not claimed"
        model = session.get(MlModel, job.model_id)
        assert model is not None
        kind, strategy, model_id = job.kind, model.strategy, model.id
        language_model = model.architecture == CAUSAL_LM
        if kind in (JobKind.UNLEARN, JobKind.MITIGATE):
            jobs.start_from(session, job=job, version_id=model.active_version_id)
        has_base = job.base_version_id is not None
        session.commit()
    try:
        if kind == JobKind.TRAIN:
            run_training(job_id=jid)
        elif not has_base:
            _nothing_to_unlearn(jid, kind=JobKind(kind))
        elif language_model:
            from workers.pipeline.lm import unlearning as lm_unlearning

            if kind == JobKind.MITIGATE:
                lm_unlearning.run_lm_mitigation(job_id=jid)
            elif (planned := lm_unlearning.run_lm_unlearning(job_id=jid)) is not None:
                return _fan_out(job_id, shards=planned)
        elif kind == JobKind.MITIGATE:
            monolithic_unlearning.mitigate(job_id=jid)
        elif strategy == Strategy.SISA:
            return _fan_out(job_id, shards=sisa_unlearning.plan_shards(job_id=jid))
        else:
            monolithic_unlearning.run(job_id=jid)
    except Exception as exc:
        _fail(jid, exc)
        return "failed"
    _start_next(model_id)
    return "done"


def _fan_out(job_id: str, *, shards: list[int]) -> str:
    """One task per shard still to retrain; with none left, the job's last step at once."""
    for shard in shards:
        enqueue(RUN_SHARD, args=[job_id, shard], queue=TRAINING_QUEUE)
    if not shards:
        enqueue(FINISH_JOB, args=[job_id], queue=TRAINING_QUEUE)
    return "fanned out"


def _language_model(job_id: uuid.UUID) -> bool:
    with db_session() as session:
        job = session.get(Job, job_id)
        model = session.get(MlModel, job.model_id) if job is not None else None
        return model is not None and model.architecture == CAUSAL_LM


def _nothing_to_unlearn(job_id: uuid.UUID, *, kind: JobKind) -> None:
    """The model had no version when the job started, so it never saw the records: verified by
    that alone."""
    with db_session() as session:
        job = jobs.enter_stage(session, job_id=job_id, stage=JobStage.VERIFYING)
        if job is not None:
            metrics = {"method": "none"}
            if kind == JobKind.MITIGATE:
                metrics["mitigation"] = "not_needed"
            jobs.succeed(session, job=job, result_version_id=None, metrics=metrics)
        session.commit()


@celery_app.task(name=RUN_SHARD)
def run_shard(job_id: str, shard: int) -> str:
    from workers.pipeline.lm.shard_tasks import retrain_lm_shard
    from workers.pipeline.sisa_unlearning import retrain_shard

    jid = uuid.UUID(job_id)
    try:
        retrain = retrain_lm_shard if _language_model(jid) else retrain_shard
        all_done = retrain(job_id=jid, shard=shard)
    except Exception as exc:
        _fail(jid, exc)
        return "failed"
    if all_done:
        enqueue(FINISH_JOB, args=[job_id], queue=TRAINING_QUEUE)
    return "done"


@celery_app.task(name=FINISH_JOB)
def finish_job(job_id: str) -> str:
    from workers.pipeline.lm.shard_tasks import finish_lm
    from workers.pipeline.sisa_unlearning import finish

    jid = uuid.UUID(job_id)
    try:
        language_model = _language_model(jid)
        (finish_lm if language_model else finish)(job_id=jid)
    except Exception as exc:
        _fail(jid, exc)
        return "failed"
    with db_session() as session:
        job = jobs.get(session, job_id=jid)
        model_id = job.model_id if job else None
        version_id = job.result_version_id if job else None
    if model_id is not None:
        _start_next(model_id)
    if version_id is not None and not language_model:  # a language model has no test accuracy
        enqueue(EVALUATE_VERSION, args=[str(version_id)], queue=TRAINING_QUEUE)
    return "done"


@celery_app.task(name=EVALUATE_VERSION)
def evaluate_version(version_id: str) -> float | None:
    from workers.pipeline.evaluation import evaluate_version as evaluate

    return evaluate(version_id=uuid.UUID(version_id))


@celery_app.task(name=RECONCILE)
def reconcile() -> dict[str, int]:
    """Re-enqueue work whose message was lost or whose worker died; fail what keeps dying."""
    counts = {"requeued": 0, "failed": 0, "rung": 0, "replanned": 0}
    to_run: list[uuid.UUID] = []
    with db_session() as session:
        for job in jobs.expired(session):
            if job.attempts < job.max_attempts:
                jobs.requeue(session, job=job, reason="lease expired")
                to_run.append(job.id)
                counts["requeued"] += 1
            else:
                jobs.fail(
                    session,
                    job=job,
                    reason=f"lease expired on each of {job.attempts} attempts",
                )
                counts["failed"] += 1
        session.commit()
        running_models = jobs.models_running(session)
        for job in jobs.due_pending(session):
            if job.model_id not in running_models and job.id not in to_run:
                to_run.append(job.id)
                counts["rung"] += 1
        replan_after = timedelta(seconds=get_settings().replan_after_seconds)
        stuck = left_unplanned(session, before=utcnow() - replan_after)
    for job_id in to_run:
        enqueue(RUN_JOB, args=[str(job_id)], queue=TRAINING_QUEUE)
    for request_id in stuck:
        enqueue(PLAN_ERASURE_REQUEST, args=[str(request_id)])
        counts["replanned"] += 1
    if any(counts.values()):
        log.info("reconciled", **counts)
    return counts


@celery_app.task(name=PREDICT, ignore_result=False)
def predict(model_id: str, version_id: str, features: list[list[float]]) -> dict[str, Any]:
    from workers.pipeline.models_io import predict_version

    with db_session() as session:
        model = session.get(MlModel, uuid.UUID(model_id))
        version = session.get(ModelVersion, uuid.UUID(version_id))
        if model is None or version is None:
            raise ValueError("the model or its version no longer exists")
        session.expunge_all()
    expected = int(np.prod(version.manifest["input_shape"]))
    bad = [i for i, row in enumerate(features) if len(row) != expected]
    if bad:
        raise ValueError(
            f"each row needs {expected} features; row {bad[0]} has {len(features[bad[0]])}"
        )
    scores = predict_version(model=model, manifest=version.manifest, features=np.asarray(features))
    return {
        "labels": scores.argmax(axis=1).astype(int).tolist(),
        "probabilities": np.round(scores, 6).tolist(),
    }
