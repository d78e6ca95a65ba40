"""A training job of a `causal_lm` model: every shard's adapter trained on the text records no
erasure has claimed, checkpointed stage by stage, and the version that names them."""

from __future__ import annotations

import time
import uuid
from typing import Any

from app.jobs import service as jobs_service
from app.jobs.enums import JobStage
from app.jobs.models import Job
from app.registry import versions
from app.registry.enums import Strategy
from app.registry.models import MlModel
from app.registry.versions import NewVersion
from workers.pipeline.lm.adapters import (
    checkpoint_rows,
    new_adapter_sisa,
    store_checkpoints,
    version_manifest,
)
from workers.pipeline.lm.records import load_text_records
from workers.pipeline.lm.text_checks import text_figures
from workers.pipeline.session import Heartbeat, db_session, enter_stage


def run_lm_training(*, job_id: uuid.UUID) -> None:
    with db_session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        model = session.get(MlModel, job.model_id)
        assert model is not None
        train = load_text_records(session, dataset_id=model.dataset_id, split="train")
        holdout = load_text_records(session, dataset_id=model.dataset_id, split="holdout")
        session.expunge_all()
    if not train:
        raise ValueError("the dataset has no training records that are not being erased")
    enter_stage(job_id, stage=JobStage.TRAINING)
    heart = Heartbeat(job_id=job_id)
    started = time.perf_counter()
    sisa = new_adapter_sisa(model)
    sisa.train(records=train, progress=lambda done: heart.beat(fraction=0.9 * done))
    store_checkpoints(model=model, sisa=sisa)
    seconds = time.perf_counter() - started
    manifest = version_manifest(
        model=model, sisa=sisa, max_record_id=max(r.record_id for r in train)
    )
    metrics: dict[str, Any] = {
        "train_records": len(train),
        "train_seconds": round(seconds, 3),
        # How the fine-tune answers its own training records and unseen people's: the figures
        # an erasure's are read against.
        "text": text_figures(
            model=sisa.ensemble(),
            tokenizer=sisa.tokenizer,
            records=train,
            holdout=holdout,
            name="train",
        ),
    }
    new = NewVersion(
        id=uuid.uuid4(),
        method="adapter_sisa_train" if model.strategy == Strategy.SISA else "train",
        exact=True,
        manifest=manifest,
        trained_records=len(train),
        metrics=metrics,
        checkpoint_rows=checkpoint_rows(manifest),
    )
    with db_session() as session:
        running = jobs_service.running_job(session, job_id=job_id)
        if running is None:
            raise RuntimeError("the job is no longer running; its result is discarded")
        # No test accuracy to compare with the active version's: a fine-tune is never held.
        version = versions.activate(session, model_id=model.id, job_id=job_id, new=new)
        jobs_service.succeed(session, job=running, result_version_id=version.id, metrics=metrics)
        session.commit()
