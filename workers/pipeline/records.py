"""Training records from the database as the engine's arrays."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from app.core.db import one_of
from app.lineage.models import TrainingRecord
from app.lineage.suppressed import not_suppressed
from app.registry.models import MlModel
from workers.engine.data import RecordArrays

_INT63 = (1 << 63) - 1
_FETCH_ROWS = 20_000


def subject_number(subject_id: uuid.UUID) -> int:
    """A stable int64 for a subject uuid (the engine groups by integer subject ids)."""
    return subject_id.int & _INT63


def load_records(
    session: Session,
    *,
    dataset_id: uuid.UUID,
    split: str,
    input_shape: Sequence[int],
    max_record_id: int | None = None,
    of_requests: Sequence[uuid.UUID] | None = None,
    only_ids: np.ndarray | None = None,
    with_features: bool = True,
) -> RecordArrays:
    """Records of one split. Without `of_requests`: every record no erasure request has claimed
    and whose person is not suppressed (erased on request, with no lawful basis of the dataset's
    client since). With it: only the records those requests claimed (the forget set). `only_ids`
    narrows to those records; without features the arrays have zero-width features (ids and
    labels only)."""
    columns = [TrainingRecord.id, TrainingRecord.label, TrainingRecord.subject_id]
    if with_features:
        columns.append(TrainingRecord.features)
    query = select(*columns).where(
        TrainingRecord.dataset_id == dataset_id, TrainingRecord.split == split
    )
    if only_ids is not None:
        query = query.where(one_of(session, TrainingRecord.id, [int(i) for i in only_ids]))
    query = trainable(
        query, dataset_id=dataset_id, of_requests=of_requests, max_record_id=max_record_id
    )
    result = session.execute(
        query.order_by(TrainingRecord.id).execution_options(yield_per=_FETCH_ROWS)
    )
    ids, labels, subjects, features = [], [], [], []
    for part in result.partitions():
        # Rows become arrays a partition at a time: the Python row objects of one partition,
        # never of the whole split, are alive at once.
        ids.append(np.fromiter((r.id for r in part), dtype=np.int64, count=len(part)))
        labels.append(np.fromiter((r.label for r in part), dtype=np.int64, count=len(part)))
        subjects.append(
            np.fromiter(
                (subject_number(r.subject_id) for r in part), dtype=np.int64, count=len(part)
            )
        )
        if with_features:
            features.append(np.frombuffer(b"".join(r.features for r in part), dtype="<f4"))
    shape = tuple(int(d) for d in input_shape) if with_features else (0,)
    record_ids = _joined(ids, np.int64)
    return RecordArrays(
        record_ids=record_ids,
        features=_joined(features, np.float32).reshape((len(record_ids), *shape)),
        labels=_joined(labels, np.int64),
        subject_ids=_joined(subjects, np.int64),
    )


SelectT = TypeVar("SelectT", bound="Select[*tuple[Any, ...]]")


def trainable(
    query: SelectT,
    *,
    dataset_id: uuid.UUID,
    of_requests: Sequence[uuid.UUID] | None,
    max_record_id: int | None,
) -> SelectT:
    """Without `of_requests`: the records no erasure request has claimed and whose person is not
    suppressed; with it, only the records those requests claimed. Up to `max_record_id`."""
    if of_requests is None:
        query = query.where(
            TrainingRecord.erasure_request_id.is_(None), not_suppressed(dataset_id=dataset_id)
        )
    else:
        query = query.where(TrainingRecord.erasure_request_id.in_(list(of_requests)))
    if max_record_id is not None:
        query = query.where(TrainingRecord.id <= max_record_id)
    return query


def _joined(parts: list[np.ndarray], dtype: type[np.generic]) -> np.ndarray:
    if not parts:
        return np.zeros(0, dtype=dtype)
    return np.concatenate(parts).astype(dtype, copy=False)


@dataclass(frozen=True)
class ModelData:
    train: RecordArrays
    holdout: RecordArrays
    test: RecordArrays


def input_shape_of(session: Session, *, model: MlModel) -> tuple[int, ...]:
    if model.input_shape:
        return tuple(model.input_shape)
    from app.lineage.models import Dataset

    dataset = session.get(Dataset, model.dataset_id)
    if dataset is None or dataset.feature_count is None:
        raise ValueError("the model's dataset has no records")
    return (dataset.feature_count,)


def count_classes(session: Session, *, dataset_id: uuid.UUID) -> int:
    highest = session.scalar(
        select(func.max(TrainingRecord.label)).where(TrainingRecord.dataset_id == dataset_id)
    )
    if highest is None:
        raise ValueError("the model's dataset has no records")
    return int(highest) + 1


def load_model_data(
    session: Session, *, model: MlModel, max_record_id: int | None = None
) -> ModelData:
    shape = input_shape_of(session, model=model)
    return ModelData(
        train=load_records(
            session,
            dataset_id=model.dataset_id,
            split="train",
            input_shape=shape,
            max_record_id=max_record_id,
        ),
        holdout=load_records(
            session, dataset_id=model.dataset_id, split="holdout", input_shape=shape
        ),
        test=load_records(session, dataset_id=model.dataset_id, split="test", input_shape=shape),
    )
