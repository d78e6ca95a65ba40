"""A text dataset's records from the database, as the engine's `TextRecord`s."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.lineage.models import TrainingRecord
from workers.engine.lm.adapter_sisa import TextRecord
from workers.engine.lm.corpus import TextExample
from workers.pipeline.records import subject_number, trainable


def load_text_records(
    session: Session,
    *,
    dataset_id: uuid.UUID,
    split: str,
    max_record_id: int | None = None,
    of_requests: Sequence[uuid.UUID] | None = None,
) -> list[TextRecord]:
    """Records of one split, by id. Without `of_requests`: those no erasure request has claimed
    and whose person is not suppressed; with it, only the records those requests claimed. A
    plain text record is a completion with an empty prompt."""
    query = select(
        TrainingRecord.id,
        TrainingRecord.subject_id,
        TrainingRecord.prompt,
        TrainingRecord.completion,
    ).where(TrainingRecord.dataset_id == dataset_id, TrainingRecord.split == split)
    query = trainable(
        query, dataset_id=dataset_id, of_requests=of_requests, max_record_id=max_record_id
    )
    return [
        TextRecord(
            record_id=int(row.id),
            example=TextExample(prompt=row.prompt or "", completion=row.completion or ""),
            subject_id=subject_number(row.subject_id),
        )
        for row in session.execute(query.order_by(TrainingRecord.id))
    ]
