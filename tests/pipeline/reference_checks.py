"""Reading an approximate model's reference models back, for the workflow tests: its versions'
rows from the database and the manifests from the artifact store (the worker and the tests
share the artifact directory)."""

from __future__ import annotations

import uuid

import numpy as np
from sqlalchemy import select

from tests.pipeline.helpers import Registered
from workers.engine.verification.manifests import (
    ReferenceManifest,
    read_manifests,
    references_holding,
)

# Records the gate compares with fewer references that never saw them are left out.
MIN_UNSEEN = 3


def version_row(version_id: str):
    from app.core.db import get_sessionmaker
    from app.registry.models import ModelVersion

    with get_sessionmaker()() as session:
        version = session.get(ModelVersion, uuid.UUID(version_id))
        assert version is not None
        return version


def record_ids(reg: Registered, person: int) -> np.ndarray:
    """The database ids of a person's training records (read before they are erased)."""
    from app.core.db import get_sessionmaker
    from app.lineage.models import TrainingRecord

    train = reg.splits["train"]
    keys = [f"train-{int(r)}" for r in train.record_ids[train.subject_ids == person]]
    with get_sessionmaker()() as session:
        ids = session.scalars(
            select(TrainingRecord.id).where(
                TrainingRecord.dataset_id == uuid.UUID(reg.dataset_id),
                TrainingRecord.key.in_(keys),
            )
        ).all()
    assert len(ids) == len(keys)
    return np.asarray(ids, dtype=np.int64)


def manifests(prefix: str) -> dict[int, ReferenceManifest]:
    from workers.pipeline.storage import artifact_store

    return {m.index: m for m in read_manifests(store=artifact_store(), prefix=prefix)}


def stored_manifests(model_id: str) -> list[ReferenceManifest]:
    """Every reference manifest stored for the model, wherever it lies."""
    from workers.pipeline.storage import artifact_store

    keys = artifact_store().list(prefix=f"models/{model_id}/")
    prefixes = {k.rsplit("/manifests/", 1)[0] for k in keys if "/manifests/" in k}
    return [m for prefix in sorted(prefixes) for m in manifests(prefix).values()]


def _seen_by(
    reg: Registered, built: dict[int, ReferenceManifest], candidates: list[int]
) -> dict[int, set[int]]:
    """The references that trained on each person's records. Which ones follows a keyed hash of
    the person's id, new in every run: tests pick people by it, not by position."""
    return {
        p: {m.index for m in references_holding(manifests=built.values(), erased_record_ids=ids)}
        for p, ids in ((p, record_ids(reg, p)) for p in candidates)
    }


def gateable(
    reg: Registered, built: dict[int, ReferenceManifest], candidates: list[int], count: int
) -> list[int]:
    """`count` of the candidates whom enough references never saw for the gate to judge."""
    seen = _seen_by(reg, built, candidates)
    chosen = [p for p in candidates if len(built) - len(seen[p]) >= MIN_UNSEEN][:count]
    assert len(chosen) == count, "too few people fit: enlarge the candidates"
    return chosen


def gateable_pair(
    reg: Registered, built: dict[int, ReferenceManifest], candidates: list[int]
) -> tuple[int, int, set[int]]:
    """Two people to erase, and the references that saw either: the first can be gated, and
    some references saw neither (they are carried to the next version)."""
    seen = _seen_by(reg, built, candidates)
    for one in candidates:
        for two in candidates:
            unseen = len(built) - len(seen[one])
            if one != two and unseen >= MIN_UNSEEN and len(seen[one] | seen[two]) < len(built):
                return one, two, seen[one] | seen[two]
    raise AssertionError("no two people fit: enlarge the candidates")
