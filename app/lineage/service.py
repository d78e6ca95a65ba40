"""Datasets, training records and identity resolution."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import CursorResult, Delete, delete, func, select, update
from sqlalchemy.orm import Session

from app.core.auth import ApiClient
from app.core.config import get_settings
from app.core.errors import NotFound, ProblemError
from app.core.pagination import newest_first
from app.lineage.bulk import DuplicateKeys, InsertResult, RecordRow, insert_records
from app.lineage.identity import identity_hash
from app.lineage.models import TABULAR, TEXT, Dataset, DataSubject, SubjectIdentity, TrainingRecord
from app.lineage.record_kinds import call_kind, check_dataset_kind
from app.lineage.schemas import IdentityIn, RecordIn
from app.lineage.suppressed import admit


@dataclass(frozen=True)
class IdentityHash:
    type: str
    hash: str


def hash_identities(*, pepper: bytes, identities: Iterable[IdentityIn]) -> list[IdentityHash]:
    return [
        IdentityHash(
            type=i.type.value,
            hash=identity_hash(
                pepper=pepper, identity_type=i.type, value=i.value, identity_format=i.format
            ),
        )
        for i in identities
    ]


def create_dataset(
    session: Session, *, client: ApiClient, name: str, description: str | None
) -> Dataset:
    dataset = Dataset(client_id=client.id, name=name, description=description)
    session.add(dataset)
    session.flush()
    return dataset


def get_dataset(session: Session, *, client: ApiClient, dataset_id: uuid.UUID) -> Dataset:
    dataset = session.get(Dataset, dataset_id)
    if dataset is None or (not client.is_admin and dataset.client_id != client.id):
        raise NotFound("Dataset")
    return dataset


def list_datasets(
    session: Session, *, client: ApiClient, cursor: str | None, limit: int
) -> tuple[list[Dataset], str | None]:
    """The caller's datasets (every client's for an admin), newest first."""
    query = select(Dataset)
    if not client.is_admin:
        query = query.where(Dataset.client_id == client.id)
    return newest_first(
        session, query, at=Dataset.created_at, id_=Dataset.id, cursor=cursor, limit=limit
    )


def record_counts_by_dataset(
    session: Session, *, dataset_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, int]]:
    """Records per split of each dataset, in one query."""
    counts: dict[uuid.UUID, dict[str, int]] = {d: {} for d in dataset_ids}
    if not dataset_ids:
        return counts
    rows = session.execute(
        select(TrainingRecord.dataset_id, TrainingRecord.split, func.count())
        .where(TrainingRecord.dataset_id.in_(list(dataset_ids)))
        .group_by(TrainingRecord.dataset_id, TrainingRecord.split)
    )
    for dataset_id, split, count in rows:
        counts[dataset_id][split] = count
    return counts


def record_counts(session: Session, *, dataset_id: uuid.UUID) -> dict[str, int]:
    rows = session.execute(
        select(TrainingRecord.split, func.count())
        .where(TrainingRecord.dataset_id == dataset_id)
        .group_by(TrainingRecord.split)
    )
    return {split: count for split, count in rows}


def features_to_bytes(values: Sequence[float] | np.ndarray) -> bytes:
    return np.asarray(values, dtype="<f4").tobytes()


def add_records(
    session: Session,
    *,
    dataset: Dataset,
    rows: Sequence[RecordRow],
    feature_count: int | None,
    actor: str,
    pointer_prefix: str = "#/records",
) -> InsertResult:
    """Insert rows in the caller's transaction: tabular rows whose features all have
    `feature_count` values, or text rows (`feature_count` None). Rows of people erased on request
    are refused unless they state a lawful basis (`admit`)."""
    kind = TABULAR if feature_count is not None else TEXT
    check_dataset_kind(dataset_kind=dataset.record_kind, kind=kind, pointer_prefix=pointer_prefix)
    dataset.record_kind = kind
    if feature_count is not None:
        _check_feature_count(dataset, feature_count, pointer_prefix)
    admit(session, dataset=dataset, rows=rows, actor=actor, pointer_prefix=pointer_prefix)
    try:
        return insert_records(session, dataset_id=dataset.id, rows=rows)
    except DuplicateKeys as exc:
        raise ProblemError(
            409,
            str(exc),
            slug="duplicate-record-key",
            errors=[
                {"pointer": f"{pointer_prefix}/{i}/key", "detail": "key already used"}
                for i in exc.positions[:100]
            ],
        ) from exc


def _check_feature_count(dataset: Dataset, feature_count: int, pointer_prefix: str) -> None:
    if dataset.feature_count is None:
        dataset.feature_count = feature_count
    elif dataset.feature_count != feature_count:
        raise ProblemError(
            422,
            f"This dataset's records have {dataset.feature_count} features, not {feature_count}",
            slug="feature-count-mismatch",
            errors=[{"pointer": f"{pointer_prefix}/0/features", "detail": "wrong length"}],
        )


def rows_from_api(
    *, pepper: bytes, records: Sequence[RecordIn]
) -> tuple[list[RecordRow], int | None]:
    """Hash identities and pack features (all records of one call must agree on length) or
    texts; the feature count is None for text records."""
    if call_kind(records) == TEXT:
        return [_text_row(pepper, r) for r in records], None
    features = [r.features or [] for r in records]
    feature_count = len(features[0])
    bad = [i for i, f in enumerate(features) if len(f) != feature_count]
    if bad:
        raise ProblemError(
            422,
            f"Every record in one call must have the same number of features ({feature_count})",
            slug="feature-count-mismatch",
            errors=[
                {"pointer": f"#/records/{i}/features", "detail": "wrong length"} for i in bad[:100]
            ],
        )
    rows = [
        RecordRow(
            key=r.key,
            identities=_hashed(pepper, r),
            features=features_to_bytes(f),
            label=r.label or 0,
            split=r.split,
            lawful_basis=r.lawful_basis.claim() if r.lawful_basis else None,
        )
        for r, f in zip(records, features, strict=True)
    ]
    return rows, feature_count


def _hashed(pepper: bytes, record: RecordIn) -> tuple[tuple[str, str], ...]:
    return tuple(
        (h.type, h.hash) for h in hash_identities(pepper=pepper, identities=record.identities)
    )


def _text_row(pepper: bytes, record: RecordIn) -> RecordRow:
    return RecordRow(
        key=record.key,
        identities=_hashed(pepper, record),
        features=b"",
        label=0,
        split=record.split,
        lawful_basis=record.lawful_basis.claim() if record.lawful_basis else None,
        prompt=record.prompt,
        completion=record.text if record.text is not None else record.completion,
    )


@dataclass(frozen=True)
class ResolvedRecords:
    subject_ids: list[uuid.UUID]
    records_by_dataset: dict[uuid.UUID, list[int]]

    @property
    def record_count(self) -> int:
        return sum(len(v) for v in self.records_by_dataset.values())


def resolve_subjects(session: Session, *, identities: Sequence[IdentityHash]) -> ResolvedRecords:
    """Identity hashes -> subjects -> their training records, grouped by dataset."""
    pairs = {(i.type, i.hash) for i in identities}
    if not pairs:
        return ResolvedRecords(subject_ids=[], records_by_dataset={})
    rows = session.execute(
        select(SubjectIdentity.type, SubjectIdentity.hash, SubjectIdentity.subject_id).where(
            SubjectIdentity.hash.in_([h for _, h in pairs])
        )
    )
    subject_ids = sorted({s for t, h, s in rows if (t, h) in pairs})
    by_dataset: dict[uuid.UUID, list[int]] = {}
    if subject_ids:
        records = session.execute(
            select(TrainingRecord.dataset_id, TrainingRecord.id)
            .where(TrainingRecord.subject_id.in_(subject_ids))
            .order_by(TrainingRecord.id)
        )
        for dataset_id, record_id in records:
            by_dataset.setdefault(dataset_id, []).append(record_id)
    return ResolvedRecords(subject_ids=subject_ids, records_by_dataset=by_dataset)


def subject_identities(
    session: Session, *, subject_ids: Sequence[uuid.UUID]
) -> list[tuple[str, str]]:
    """Every (type, hash) the subjects are known by."""
    if not subject_ids:
        return []
    rows = session.execute(
        select(SubjectIdentity.type, SubjectIdentity.hash).where(
            SubjectIdentity.subject_id.in_(list(subject_ids))
        )
    )
    return [(t, h) for t, h in rows]


def claim_records(session: Session, *, record_ids: Sequence[int], request_id: uuid.UUID) -> None:
    """Mark records as claimed by an erasure request: no training run uses them from now on."""
    if record_ids:
        session.execute(
            update(TrainingRecord)
            .where(TrainingRecord.id.in_(list(record_ids)))
            .values(erasure_request_id=request_id)
        )


def _deleted(session: Session, statement: Delete) -> int:
    result = session.execute(statement)
    assert isinstance(result, CursorResult)
    return result.rowcount


def purge_claimed(
    session: Session, *, request_id: uuid.UUID, subject_ids: Sequence[uuid.UUID]
) -> tuple[int, int]:
    """Delete the request's records, and those of its subjects that now hold no record.
    Returns (records deleted, subjects deleted)."""
    records = _deleted(
        session, delete(TrainingRecord).where(TrainingRecord.erasure_request_id == request_id)
    )
    removable = [
        s
        for s in subject_ids
        if not session.scalar(
            select(func.count()).select_from(TrainingRecord).where(TrainingRecord.subject_id == s)
        )
    ]
    subjects = 0
    if removable:
        session.execute(delete(SubjectIdentity).where(SubjectIdentity.subject_id.in_(removable)))
        subjects = _deleted(session, delete(DataSubject).where(DataSubject.id.in_(removable)))
    return records, subjects


def add_api_records(
    session: Session, *, client: ApiClient, dataset_id: uuid.UUID, records: Sequence[RecordIn]
) -> tuple[Dataset, InsertResult]:
    """Records sent to `POST /v1/datasets/{id}/records`, within the per-call limit."""
    settings = get_settings()
    if len(records) > settings.max_records_per_call:
        raise ProblemError(
            422,
            f"At most {settings.max_records_per_call} records per call; "
            "use `lethe records import` for larger sets",
            slug="too-many-records",
            errors=[{"pointer": "#/records", "detail": "too many records"}],
        )
    dataset = get_dataset(session, client=client, dataset_id=dataset_id)
    rows, feature_count = rows_from_api(pepper=settings.pepper_bytes(), records=records)
    return dataset, add_records(
        session, dataset=dataset, rows=rows, feature_count=feature_count, actor=client.actor
    )
