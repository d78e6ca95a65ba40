from __future__ import annotations

import numpy as np

from workers.engine.data import RecordArrays
from workers.engine.partition import assign_shards, assign_slices, keyed_hash, partition


def _records(record_ids: np.ndarray, subject_ids: np.ndarray | None = None) -> RecordArrays:
    return RecordArrays(
        record_ids=record_ids,
        features=np.zeros((record_ids.size, 1)),
        labels=np.zeros(record_ids.size),
        subject_ids=record_ids if subject_ids is None else subject_ids,
    )


def test_assignment_is_deterministic_and_in_range() -> None:
    records = _records(np.arange(5_000))
    first = assign_shards(records=records, shards=7, seed=1)
    assert np.array_equal(first, assign_shards(records=records, shards=7, seed=1))
    assert first.min() == 0 and first.max() == 6
    assert not np.array_equal(first, assign_shards(records=records, shards=7, seed=2))


def test_assignment_is_roughly_balanced() -> None:
    records = _records(np.arange(16_000))
    counts = np.bincount(assign_shards(records=records, shards=16, seed=0), minlength=16)
    assert counts.min() > 0.85 * 1_000 and counts.max() < 1.15 * 1_000


def test_adding_or_removing_records_moves_no_other_record() -> None:
    everyone = _records(np.arange(2_000))
    kept = np.random.default_rng(0).random(2_000) < 0.7
    fewer = everyone.subset(kept)
    more = _records(np.arange(3_000))
    for assign in (
        lambda r: assign_shards(records=r, shards=5, seed=3),
        lambda r: assign_slices(records=r, slices=4, seed=3),
    ):
        baseline = assign(everyone)
        assert np.array_equal(assign(fewer), baseline[kept])
        assert np.array_equal(assign(more)[:2_000], baseline)


def test_hash_does_not_depend_on_position() -> None:
    ids = np.array([5, 1, 9], dtype=np.int64)
    hashed = keyed_hash(values=ids, seed=0, purpose="shard")
    assert np.array_equal(keyed_hash(values=ids[::-1], seed=0, purpose="shard"), hashed[::-1])
    assert not np.array_equal(keyed_hash(values=ids, seed=0, purpose="slice"), hashed)


def test_subject_sharding_keeps_a_person_in_one_shard() -> None:
    subjects = np.repeat(np.arange(100), 7)
    records = _records(np.arange(700), subjects)
    shard_of = assign_shards(records=records, shards=8, seed=0, shard_key="subject")
    for subject in range(100):
        assert np.unique(shard_of[subjects == subject]).size == 1


def test_partition_covers_every_record_once_sorted_by_id() -> None:
    records = _records(np.random.default_rng(1).permutation(1_000) * 3)
    layout = partition(records=records, shards=4, slices=3, seed=0)
    positions = np.concatenate([part for shard in layout for part in shard])
    assert np.array_equal(np.sort(positions), np.arange(1_000))
    for shard in layout:
        for part in shard:
            assert np.all(np.diff(records.record_ids[part]) > 0)
