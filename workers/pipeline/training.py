"""A training job: the model's first (or a fresh) version from every unclaimed record."""

from __future__ import annotations

import time
import uuid
from typing import Any

import numpy as np

from app.jobs import service as jobs_service
from app.jobs.enums import JobStage
from app.jobs.models import Job
from app.registry import holds, versions
from app.registry.base_models import CAUSAL_LM
from app.registry.enums import Strategy
from app.registry.models import MlModel, ModelVersion
from app.registry.versions import NewVersion
from workers.engine.aggregation import ensemble_accuracy
from workers.engine.sisa import iter_shard_models, train_sisa
from workers.engine.training import accuracy, train_model
from workers.pipeline import references
from workers.pipeline.models_io import (
    save_monolithic,
    sisa_checkpoint_rows,
    sisa_config,
    spec_for,
)
from workers.pipeline.records import count_classes, input_shape_of, load_model_data
from workers.pipeline.session import Heartbeat, db_session, enter_stage
from workers.pipeline.storage import REFERENCES_KEY, checkpoint_store, prefix_of


def run_training(*, job_id: uuid.UUID) -> None:
    with db_session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        model = session.get(MlModel, job.model_id)
        assert model is not None
        if model.architecture == CAUSAL_LM:
            from workers.pipeline.lm.training import run_lm_training

            session.rollback()
            run_lm_training(job_id=job_id)
            return
        versions.set_data_shape(
            session,
            model_id=model.id,
            num_classes=count_classes(session, dataset_id=model.dataset_id),
            input_shape=input_shape_of(session, model=model),
        )
        data = load_model_data(session, model=model)
        active = (
            session.get(ModelVersion, model.active_version_id) if model.active_version_id else None
        )
        carry_from = prefix_of(manifest=active.manifest) if active is not None else None
        session.commit()
    if len(data.train) == 0:
        raise ValueError("the dataset has no training records that are not being erased")
    enter_stage(job_id, stage=JobStage.TRAINING)
    heart = Heartbeat(job_id=job_id)
    assert model.num_classes is not None and model.input_shape is not None
    spec = spec_for(model)
    num_classes = int(model.num_classes)
    shape = tuple(model.input_shape)
    version_id = uuid.uuid4()
    max_record_id = int(data.train.record_ids.max())
    started = time.perf_counter()
    pending: references.PendingReferences | None = None
    share = 1.0  # of the job's progress that training the model takes
    if model.strategy == Strategy.SISA:
        checkpoints = checkpoint_store(model_id=model.id)
        report = train_sisa(
            spec=spec,
            data=data.train,
            num_classes=num_classes,
            config=sisa_config(model),
            checkpoints=checkpoints,
            progress=lambda e: heart.beat(fraction=e.fraction),
            keep_models=False,
        )
        shard_models = iter_shard_models(model=report.model, spec=spec, checkpoints=checkpoints)
        test_accuracy = ensemble_accuracy(
            models=(network for _, network in shard_models),
            data=data.test,
            mode=model.aggregation,  # type: ignore[arg-type]
        )
        manifest = {**report.model.to_dict(), "max_record_id": max_record_id}
        checkpoint_rows = sisa_checkpoint_rows(report.model)
        method = "sisa_train"
    else:
        # An approximate model's reference models are part of the version, and of the job.
        pending = references.prepare(
            model=model,
            version_id=version_id,
            data=data.train,
            num_classes=num_classes,
            carry_from=carry_from,
        )
        share = 1.0 / (1.0 + (pending.cost if pending is not None else 0.0))
        network = train_model(
            spec=spec,
            data=data.train,
            num_classes=num_classes,
            seed=model.seed,
            epochs=spec.epochs,
            progress=lambda epoch, total: heart.beat(fraction=share * epoch / total),
        )
        test_accuracy = accuracy(model=network, data=data.test)
        manifest = save_monolithic(
            model=model,
            version_id=version_id,
            network=network,
            record_ids=data.train.record_ids,
            input_shape=shape,
            num_classes=num_classes,
            max_record_id=max_record_id,
        )
        checkpoint_rows = [(manifest["weights_key"], 0, 0)]
        method = "train"
    seconds = time.perf_counter() - started
    metrics: dict[str, Any] = {
        "test_accuracy": _rounded(test_accuracy),
        "train_records": len(data.train),
        "test_records": len(data.test),
        "train_seconds": round(seconds, 3),
    }
    if pending is not None:  # before activation: the version is gated with them
        metrics["references"] = references.build(
            pending=pending,
            model=model,
            data=data.train,
            num_classes=num_classes,
            progress=lambda done: heart.beat(fraction=share + (1.0 - share) * done),
        )
        manifest[REFERENCES_KEY] = pending.prefix
    new = NewVersion(
        id=version_id,
        method=method,
        exact=True,
        manifest=manifest,
        trained_records=len(data.train),
        metrics=metrics,
        checkpoint_rows=checkpoint_rows,
    )
    with db_session() as session:
        running = jobs_service.running_job(session, job_id=job_id)
        if running is None:
            raise RuntimeError("the job is no longer running; its result is discarded")
        # A version much worse than the active one is held for an admin, not activated.
        drop = holds.training_drop(session, model_id=model.id, accuracy=metrics["test_accuracy"])
        if drop is None:
            version = versions.activate(session, model_id=model.id, job_id=job_id, new=new)
        else:
            version = holds.hold(session, model_id=model.id, job_id=job_id, new=new, drop=drop)
            metrics = {**metrics, **drop.job_metrics()}
        jobs_service.succeed(session, job=running, result_version_id=version.id, metrics=metrics)
        session.commit()


def _rounded(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 4)
