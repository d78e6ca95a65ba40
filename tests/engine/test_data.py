from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from workers.engine.data import (
    Dataset,
    RecordArrays,
    digits,
    load_file,
    synthetic_purchase,
    to_tensor_dataset,
)


def _all_record_ids(dataset: Dataset) -> np.ndarray:
    return np.concatenate(
        [dataset.train.record_ids, dataset.holdout.record_ids, dataset.test.record_ids]
    )


def test_synthetic_purchase_is_shaped_like_purchase_100() -> None:
    dataset = synthetic_purchase(records=2_000, seed=1)
    assert dataset.input_shape == (600,)
    assert dataset.num_classes == 100
    assert dataset.train.features.shape == (len(dataset.train), 600)
    assert dataset.train.features.dtype == np.float32
    assert set(np.unique(dataset.train.features)) <= {0.0, 1.0}
    assert dataset.train.labels.min() >= 0 and dataset.train.labels.max() < 100
    assert len(dataset.train) == 1_400 and len(dataset.holdout) == len(dataset.test) == 300


def test_splits_are_disjoint_and_cover_every_record() -> None:
    dataset = synthetic_purchase(records=1_000, seed=2)
    ids = _all_record_ids(dataset)
    assert np.unique(ids).size == ids.size == 1_000


def test_subjects_have_a_skewed_number_of_records() -> None:
    dataset = synthetic_purchase(records=5_000, seed=0)
    _, per_subject = np.unique(dataset.train.subject_ids, return_counts=True)
    assert per_subject.min() == 1
    assert per_subject.max() >= 5 * np.median(per_subject)


def test_generators_are_deterministic_for_a_seed() -> None:
    first = synthetic_purchase(records=500, seed=7)
    second = synthetic_purchase(records=500, seed=7)
    other = synthetic_purchase(records=500, seed=8)
    assert np.array_equal(first.train.features, second.train.features)
    assert np.array_equal(first.train.subject_ids, second.train.subject_ids)
    assert not np.array_equal(first.train.features, other.train.features)


def test_digits_are_small_images_in_unit_range() -> None:
    dataset = digits(seed=0)
    assert dataset.input_shape == (1, 8, 8)
    assert dataset.num_classes == 10
    assert _all_record_ids(dataset).size == 1_797
    assert dataset.train.features.min() >= 0.0 and dataset.train.features.max() <= 1.0
    assert dataset.train.subject_ids.shape == dataset.train.record_ids.shape


def test_record_arrays_reject_duplicate_ids_and_misaligned_rows() -> None:
    with pytest.raises(ValueError, match="unique"):
        RecordArrays(
            record_ids=[1, 1], features=np.zeros((2, 3)), labels=[0, 1], subject_ids=[0, 0]
        )
    with pytest.raises(ValueError):
        RecordArrays(
            record_ids=[1, 2], features=np.zeros((3, 3)), labels=[0, 1], subject_ids=[0, 0]
        )


def test_subset_without_and_of_subjects() -> None:
    records = RecordArrays(
        record_ids=[10, 11, 12, 13],
        features=np.arange(8).reshape(4, 2),
        labels=[0, 1, 0, 1],
        subject_ids=[5, 5, 6, 7],
    )
    assert len(records) == 4
    assert records.subset([2, 0]).record_ids.tolist() == [12, 10]
    assert records.without([11, 99]).record_ids.tolist() == [10, 12, 13]
    assert records.of_subjects([5]).record_ids.tolist() == [10, 11]
    assert records.features.dtype == np.float32 and records.labels.dtype == np.int64


def test_to_tensor_dataset() -> None:
    dataset = synthetic_purchase(records=200, seed=0, num_features=8, num_classes=3)
    tensors = to_tensor_dataset(dataset.train)
    features, label = tensors[0]
    assert len(tensors) == len(dataset.train)
    assert features.dtype == torch.float32 and features.shape == (8,)
    assert label.dtype == torch.int64


def test_load_csv_with_split_column(tmp_path: Path) -> None:
    path = tmp_path / "records.csv"
    path.write_text(
        "record_id,subject_id,f0,f1,label,split\n"
        "1,100,0.5,1.0,0,train\n"
        "2,100,0.0,1.0,2,train\n"
        "3,101,1.0,0.0,1,holdout\n"
        "4,102,0.25,0.75,1,test\n"
    )
    dataset = load_file(path)
    assert dataset.name == "records"
    assert dataset.input_shape == (2,)
    assert dataset.num_classes == 3
    assert dataset.train.record_ids.tolist() == [1, 2]
    assert dataset.train.features.tolist() == [[0.5, 1.0], [0.0, 1.0]]
    assert dataset.holdout.subject_ids.tolist() == [101]
    assert dataset.test.labels.tolist() == [1]


def test_load_csv_requires_id_columns(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("f0,label\n1.0,0\n")
    with pytest.raises(ValueError, match="missing columns"):
        load_file(path)


def test_load_npz_without_split_reshapes_and_splits(tmp_path: Path) -> None:
    path = tmp_path / "images.npz"
    count = 40
    np.savez(
        path,
        features=np.random.default_rng(0).random((count, 16)),
        labels=np.arange(count) % 4,
        subject_ids=np.arange(count) // 2,
    )
    dataset = load_file(path, input_shape=(1, 4, 4), seed=1)
    assert dataset.input_shape == (1, 4, 4)
    assert dataset.num_classes == 4
    assert _all_record_ids(dataset).size == count
    assert len(dataset.holdout) == len(dataset.test) == 6


def test_load_file_rejects_unknown_formats(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        load_file(tmp_path / "records.parquet")
