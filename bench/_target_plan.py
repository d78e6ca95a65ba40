"""Planning one person's erasure from a SISA model: resolve their identity to records, then find
which shards hold those records and the earliest slice of each (where retraining restarts).

The shard and slice of a record are pure functions of its id (`workers.engine.partition`); this
times that pure part beside the resolution. The service's own planning step also reads each
affected shard's checkpoint manifests (`workers.engine.unlearning.erasure_impact`), which needs a
trained model and is not timed here.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from app.lineage.service import IdentityHash, resolve_subjects
from bench._support import percentile
from workers.engine.data import RecordArrays
from workers.engine.partition import assign_shards, assign_slices


def earliest_slices(
    *, record_ids: np.ndarray, shards: int, slices: int, seed: int
) -> dict[int, int]:
    """Shard -> the earliest slice holding one of the records (shards keyed by record id)."""
    keys = RecordArrays(
        record_ids=record_ids,
        features=np.zeros((len(record_ids), 0), dtype=np.float32),
        labels=np.zeros(len(record_ids), dtype=np.int64),
        subject_ids=np.zeros(len(record_ids), dtype=np.int64),
    )
    shard_of = assign_shards(records=keys, shards=shards, seed=seed)
    slice_of = assign_slices(records=keys, slices=slices, seed=seed)
    earliest: dict[int, int] = {}
    for shard, part in zip(shard_of.tolist(), slice_of.tolist(), strict=True):
        earliest[shard] = min(part, earliest.get(shard, part))
    return earliest


def plan_timings(
    session: Session,
    *,
    target: IdentityHash,
    shards: int,
    slices: int,
    seed: int,
    repeats: int,
) -> dict[str, Any]:
    """p50/p99 of resolve + plan, and of the plan alone, for one person."""
    total, pure = [], []
    plan: dict[int, int] = {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        resolved = resolve_subjects(session, identities=[target])
        ids = np.array([r for ids in resolved.records_by_dataset.values() for r in ids])
        t1 = time.perf_counter()
        plan = earliest_slices(record_ids=ids, shards=shards, slices=slices, seed=seed)
        t2 = time.perf_counter()
        total.append(t2 - t0)
        pure.append(t2 - t1)
        session.rollback()
    return {
        "plan_shards_x_slices": f"{shards}x{slices}",
        "plan_affected_shards": len(plan),
        "plan_retrained_slices": sum(slices - s for s in plan.values()),
        "resolve_and_plan_p50_ms": round(percentile(total, 50) * 1000, 3),
        "resolve_and_plan_p99_ms": round(percentile(total, 99) * 1000, 3),
        "plan_alone_p50_ms": round(percentile(pure, 50) * 1000, 3),
        "plan_alone_p99_ms": round(percentile(pure, 99) * 1000, 3),
    }
