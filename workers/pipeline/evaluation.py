"""Measuring a new version's test accuracy after it is active, off the erasure's critical path; a
fall of more than the hold threshold is flagged on its job (an erasure's version is never held)."""

from __future__ import annotations

import uuid

import numpy as np

from app.jobs import service as jobs_service
from app.registry import holds, versions
from app.registry.models import MlModel, ModelVersion
from workers.pipeline.models_io import predict_version
from workers.pipeline.records import load_records
from workers.pipeline.session import db_session


def evaluate_version(*, version_id: uuid.UUID) -> float | None:
    """Store the version's accuracy on the test split in its metrics; returns it."""
    with db_session() as session:
        version = session.get(ModelVersion, version_id)
        model = session.get(MlModel, version.model_id) if version else None
        if version is None or model is None or "test_accuracy" in (version.metrics or {}):
            return None
        manifest = version.manifest
        test = load_records(
            session,
            dataset_id=model.dataset_id,
            split="test",
            input_shape=tuple(manifest["input_shape"]),
        )
        session.expunge_all()
    accuracy = None
    if len(test):
        scores = predict_version(model=model, manifest=manifest, features=test.features)
        accuracy = round(float(np.mean(scores.argmax(axis=1) == test.labels)), 4)
    with db_session() as session:
        versions.record_test_accuracy(session, version_id=version_id, accuracy=accuracy)
        measured = session.get(ModelVersion, version_id)
        alert = holds.flag_quality_drop(session, version=measured) if measured else None
        if alert is not None and measured is not None and measured.job_id is not None:
            jobs_service.add_metrics(
                session, job_id=measured.job_id, metrics={"quality_alert": alert}
            )
        session.commit()
    return accuracy
