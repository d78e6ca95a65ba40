"""What an unlearning job's steps share: the model, its base version, the job's requests, and
reading their records (each step reads only what it needs)."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import numpy as np

from app.jobs import service as jobs
from app.jobs.models import Job
from app.registry.models import MlModel, ModelVersion
from workers.engine.data import RecordArrays
from workers.pipeline.records import load_records
from workers.pipeline.session import db_session


@dataclasses.dataclass(frozen=True)
class JobContext:
    job_id: uuid.UUID
    model: MlModel
    base: ModelVersion
    request_ids: list[uuid.UUID]

    @property
    def max_record_id(self) -> int | None:
        return self.base.manifest.get("max_record_id")

    def records(self, *, split: str, **kwargs: Any) -> RecordArrays:
        with db_session() as session:
            return load_records(
                session,
                dataset_id=self.model.dataset_id,
                split=split,
                # A language model's manifest has no input shape: its records are read as text.
                input_shape=tuple(self.base.manifest.get("input_shape") or ()),
                **kwargs,
            )

    def remaining(self, **kwargs: Any) -> RecordArrays:
        """The base version's training records that no erasure request has claimed."""
        return self.records(split="train", max_record_id=self.max_record_id, **kwargs)

    def forget(self, **kwargs: Any) -> RecordArrays:
        """This job's requests' records that the base version was trained on."""
        return self.records(
            split="train", max_record_id=self.max_record_id, of_requests=self.request_ids, **kwargs
        )

    def forget_ids(self) -> np.ndarray:
        return self.forget(with_features=False).record_ids


def load_context(*, job_id: uuid.UUID) -> JobContext:
    with db_session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        model = session.get(MlModel, job.model_id)
        base = session.get(ModelVersion, job.base_version_id) if job.base_version_id else None
        if model is None or base is None:
            raise ValueError("the job has no base version to unlearn from")
        request_ids = jobs.request_ids(session, job_id=job_id)
        session.expunge_all()
    return JobContext(job_id=job_id, model=model, base=base, request_ids=request_ids)
