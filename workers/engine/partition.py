"""Deterministic assignment of records to SISA shards and slices.

Each record's shard and slice come from a keyed hash of its record id (or, for shards, its
subject id) and a seed, never from its position, so adding or removing records leaves every other
record where it was. Imports numpy only.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import numpy as np

from workers.engine.data import RecordArrays

ShardKey = Literal["record", "subject"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(values: np.ndarray) -> np.ndarray:
    # The SplitMix64 finalizer: a fast bijective mix of 64-bit integers; uint64 arithmetic wraps.
    z = values + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX_1
    z = (z ^ (z >> np.uint64(27))) * _MIX_2
    return z ^ (z >> np.uint64(31))


def _salt(*, seed: int, purpose: str) -> np.uint64:
    digest = hashlib.sha256(f"lethe-partition:{purpose}:{seed}".encode()).digest()
    return np.uint64(int.from_bytes(digest[:8], "little"))


def keyed_hash(*, values: np.ndarray, seed: int, purpose: str) -> np.ndarray:
    """A uint64 hash per value, stable across runs, platforms and numpy versions."""
    as_unsigned = np.asarray(values, dtype=np.int64).view(np.uint64)
    with np.errstate(over="ignore"):
        return _splitmix64(_splitmix64(as_unsigned ^ _salt(seed=seed, purpose=purpose)))


def assign_buckets(*, values: np.ndarray, seed: int, buckets: int, purpose: str) -> np.ndarray:
    """A bucket in [0, buckets) per value (int64)."""
    if buckets < 1:
        raise ValueError("buckets must be >= 1")
    hashed = keyed_hash(values=values, seed=seed, purpose=purpose)
    return (hashed % np.uint64(buckets)).astype(np.int64)


def assign_shards(
    *, records: RecordArrays, shards: int, seed: int, shard_key: ShardKey = "record"
) -> np.ndarray:
    """The shard of each record. With `shard_key="subject"` all records of one data subject share
    a shard, so erasing a person retrains one shard however many records they have."""
    keys = records.record_ids if shard_key == "record" else records.subject_ids
    return assign_buckets(values=keys, seed=seed, buckets=shards, purpose="shard")


def assign_slices(*, records: RecordArrays, slices: int, seed: int) -> np.ndarray:
    """The slice of each record within its shard."""
    return assign_buckets(values=records.record_ids, seed=seed, buckets=slices, purpose="slice")


def partition(
    *,
    records: RecordArrays,
    shards: int,
    slices: int,
    seed: int,
    shard_key: ShardKey = "record",
) -> list[list[np.ndarray]]:
    """Positions into `records`, as `result[shard][slice]`, each sorted by record id."""
    shard_of = assign_shards(records=records, shards=shards, seed=seed, shard_key=shard_key)
    slice_of = assign_slices(records=records, slices=slices, seed=seed)
    bucket = shard_of * slices + slice_of
    order = np.lexsort((records.record_ids, bucket))
    bounds = np.searchsorted(bucket[order], np.arange(shards * slices + 1))
    return [
        [
            order[bounds[shard * slices + part] : bounds[shard * slices + part + 1]]
            for part in range(slices)
        ]
        for shard in range(shards)
    ]
