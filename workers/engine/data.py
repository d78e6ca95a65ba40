"""Training records as plain numpy arrays, and the datasets the engine ships with.

This module imports numpy only (scikit-learn and torch are imported where needed), so the API
layer can read record arrays without the training stack.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from torch.utils.data import TensorDataset

SPLITS = ("train", "holdout", "test")


@dataclass(frozen=True, eq=False)
class RecordArrays:
    """Aligned arrays of training records: one row per record."""

    record_ids: np.ndarray  # int64, unique
    features: np.ndarray  # float32, shape [n, *input_shape]
    labels: np.ndarray  # int64
    subject_ids: np.ndarray  # int64, the data subject each record belongs to

    def __post_init__(self) -> None:
        object.__setattr__(self, "record_ids", np.asarray(self.record_ids, dtype=np.int64))
        object.__setattr__(self, "features", np.asarray(self.features, dtype=np.float32))
        object.__setattr__(self, "labels", np.asarray(self.labels, dtype=np.int64))
        object.__setattr__(self, "subject_ids", np.asarray(self.subject_ids, dtype=np.int64))
        n = self.record_ids.shape[0]
        if self.record_ids.ndim != 1 or self.labels.shape != (n,) or self.subject_ids.shape != (n,):
            raise ValueError("record_ids, labels and subject_ids must be 1-d and of equal length")
        if self.features.shape[:1] != (n,):
            raise ValueError(f"features has {self.features.shape[0]} rows, expected {n}")
        if np.unique(self.record_ids).shape[0] != n:
            raise ValueError("record_ids must be unique")

    def __len__(self) -> int:
        return int(self.record_ids.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.features.shape[1:])

    def subset(self, index: np.ndarray | Sequence[int] | slice) -> RecordArrays:
        """Rows selected by a positional index, boolean mask or slice."""
        if not isinstance(index, slice):
            index = np.asarray(index)
        return RecordArrays(
            record_ids=self.record_ids[index],
            features=self.features[index],
            labels=self.labels[index],
            subject_ids=self.subject_ids[index],
        )

    def without(self, record_ids: np.ndarray | Sequence[int]) -> RecordArrays:
        """These records minus the given record ids (ids not present are ignored)."""
        return self.subset(~np.isin(self.record_ids, np.asarray(record_ids, dtype=np.int64)))

    def of_subjects(self, subject_ids: np.ndarray | Sequence[int]) -> RecordArrays:
        """The records that belong to the given data subjects."""
        return self.subset(np.isin(self.subject_ids, np.asarray(subject_ids, dtype=np.int64)))


@dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset split three ways. Only `train` is ever trained on; `holdout` serves
    membership-inference checks and `test` measures accuracy."""

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    train: RecordArrays
    holdout: RecordArrays
    test: RecordArrays


def to_tensor_dataset(records: RecordArrays) -> TensorDataset:
    """A torch `TensorDataset` of (features float32, labels int64)."""
    import torch
    from torch.utils.data import TensorDataset

    return TensorDataset(torch.from_numpy(records.features), torch.from_numpy(records.labels))


def synthetic_subject_ids(
    *, count: int, rng: np.random.Generator, mean_records: float = 4.0
) -> np.ndarray:
    """Subject ids for `count` records, with a skewed (lognormal) number of records per subject:
    most people have a few records, a few people have many."""
    sigma = 1.0
    mu = np.log(mean_records) - sigma**2 / 2
    sizes: list[int] = []
    total = 0
    while total < count:
        size = max(1, round(float(rng.lognormal(mu, sigma))))
        sizes.append(size)
        total += size
    owners = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)[:count]
    return owners[rng.permutation(count)]


def split_records(
    *,
    name: str,
    records: RecordArrays,
    num_classes: int,
    rng: np.random.Generator,
    holdout_fraction: float = 0.15,
    test_fraction: float = 0.15,
) -> Dataset:
    """Split records at random into train, holdout and test."""
    if holdout_fraction < 0 or test_fraction < 0 or holdout_fraction + test_fraction >= 1:
        raise ValueError("holdout_fraction and test_fraction must be >= 0 and sum below 1")
    order = rng.permutation(len(records))
    n_holdout = round(len(records) * holdout_fraction)
    n_test = round(len(records) * test_fraction)
    holdout = order[:n_holdout]
    test = order[n_holdout : n_holdout + n_test]
    train = order[n_holdout + n_test :]
    return Dataset(
        name=name,
        input_shape=records.input_shape,
        num_classes=num_classes,
        train=records.subset(np.sort(train)),
        holdout=records.subset(np.sort(holdout)),
        test=records.subset(np.sort(test)),
    )


def synthetic_purchase(
    *,
    records: int = 20_000,
    seed: int = 0,
    num_features: int = 600,
    num_classes: int = 100,
    num_groups: int = 20,
    class_separation: float = 0.04,
    feature_noise: float = 0.4,
    label_noise: float = 0.1,
    mean_records_per_subject: float = 4.0,
    holdout_fraction: float = 0.15,
    test_fraction: float = 0.15,
) -> Dataset:
    """A synthetic stand-in for Purchase-100: binary purchase vectors in 100 classes.

    Classes are noisy copies of prototypes that share a group prototype, so neighbouring classes
    overlap; `label_noise` of the records get a random label, which a model can only fit by
    memorizing them. That gap between training and unseen records is what membership inference
    measures. `class_separation` is the share of bits in which a class prototype differs from its
    group's; `feature_noise` is the share of a record's bits drawn at random instead of copied.
    """
    rng = np.random.default_rng(seed)
    groups = rng.random((num_groups, num_features)) < 0.15
    class_group = rng.integers(0, num_groups, size=num_classes)
    class_flips = rng.random((num_classes, num_features)) < class_separation
    prototypes = groups[class_group] ^ class_flips

    labels = rng.integers(0, num_classes, size=records)
    flips = rng.random((records, num_features)) < feature_noise / 2
    features = (prototypes[labels] ^ flips).astype(np.float32)
    noisy = rng.random(records) < label_noise
    labels[noisy] = rng.integers(0, num_classes, size=int(noisy.sum()))

    arrays = RecordArrays(
        record_ids=np.arange(records, dtype=np.int64),
        features=features,
        labels=labels,
        subject_ids=synthetic_subject_ids(
            count=records, rng=rng, mean_records=mean_records_per_subject
        ),
    )
    return split_records(
        name="synthetic-purchase",
        records=arrays,
        num_classes=num_classes,
        rng=rng,
        holdout_fraction=holdout_fraction,
        test_fraction=test_fraction,
    )


def digits(
    *,
    seed: int = 0,
    mean_records_per_subject: float = 4.0,
    holdout_fraction: float = 0.15,
    test_fraction: float = 0.15,
) -> Dataset:
    """scikit-learn's bundled handwritten digits (1797 images of 8x8, 10 classes), scaled to
    [0, 1] with input shape (1, 8, 8), and synthetic subject ids."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    rng = np.random.default_rng(seed)
    count = bunch.images.shape[0]
    arrays = RecordArrays(
        record_ids=np.arange(count, dtype=np.int64),
        features=(bunch.images / 16.0).astype(np.float32).reshape(count, 1, 8, 8),
        labels=bunch.target.astype(np.int64),
        subject_ids=synthetic_subject_ids(
            count=count, rng=rng, mean_records=mean_records_per_subject
        ),
    )
    return split_records(
        name="digits",
        records=arrays,
        num_classes=10,
        rng=rng,
        holdout_fraction=holdout_fraction,
        test_fraction=test_fraction,
    )


def load_file(
    path: str | Path,
    *,
    name: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    num_classes: int | None = None,
    seed: int = 0,
    holdout_fraction: float = 0.15,
    test_fraction: float = 0.15,
) -> Dataset:
    """Load a dataset from a CSV or NPZ file.

    CSV: a header row; columns `record_id` (int), `subject_id` (int), `label` (int), optionally
    `split` (`train`, `holdout` or `test`); every other column is a numeric feature, in order.

    NPZ: arrays `features` ([n, ...] numeric) and `labels` ([n] int); optionally `record_ids`
    (default 0..n-1), `subject_ids` (default: one subject per record) and `split` (strings as
    above).

    Without a split, records are split at random with `seed`. `input_shape` reshapes flat
    features (e.g. (1, 8, 8)); `num_classes` defaults to the largest label plus one.
    """
    path = Path(path)
    if path.suffix.lower() == ".npz":
        columns = _read_npz(path)
    elif path.suffix.lower() == ".csv":
        columns = _read_csv(path)
    else:
        raise ValueError(f"unsupported file type {path.suffix!r}: expected .csv or .npz")

    features = np.asarray(columns["features"], dtype=np.float32)
    count = features.shape[0]
    if input_shape is not None:
        features = features.reshape(count, *input_shape)
    record_ids = columns.get("record_ids")
    subject_ids = columns.get("subject_ids")
    records = RecordArrays(
        record_ids=np.arange(count) if record_ids is None else record_ids,
        features=features,
        labels=columns["labels"],
        subject_ids=np.arange(count) if subject_ids is None else subject_ids,
    )
    classes = int(records.labels.max()) + 1 if num_classes is None else num_classes
    dataset_name = name or path.stem
    split = columns.get("split")
    if split is None:
        return split_records(
            name=dataset_name,
            records=records,
            num_classes=classes,
            rng=np.random.default_rng(seed),
            holdout_fraction=holdout_fraction,
            test_fraction=test_fraction,
        )
    split = np.asarray(split).astype(str)
    unknown = set(np.unique(split)) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown split values {sorted(unknown)}; expected {SPLITS}")
    return Dataset(
        name=dataset_name,
        input_shape=records.input_shape,
        num_classes=classes,
        train=records.subset(split == "train"),
        holdout=records.subset(split == "holdout"),
        test=records.subset(split == "test"),
    )


def _read_npz(path: Path) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as archive:
        if "features" not in archive or "labels" not in archive:
            raise ValueError("an NPZ dataset needs the arrays 'features' and 'labels'")
        return {key: archive[key] for key in archive.files}


def _read_csv(path: Path) -> dict[str, Any]:
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = list(reader)
    required = {"record_id", "subject_id", "label"}
    missing = required - set(header)
    if missing:
        raise ValueError(f"CSV is missing columns {sorted(missing)}")
    position = {column: i for i, column in enumerate(header)}
    feature_columns = [i for i, column in enumerate(header) if column not in required | {"split"}]
    if not feature_columns:
        raise ValueError("CSV has no feature columns")
    columns: dict[str, Any] = {
        "record_ids": np.array([int(row[position["record_id"]]) for row in rows], dtype=np.int64),
        "subject_ids": np.array([int(row[position["subject_id"]]) for row in rows], dtype=np.int64),
        "labels": np.array([int(row[position["label"]]) for row in rows], dtype=np.int64),
        "features": np.array([[float(row[i]) for i in feature_columns] for row in rows]),
    }
    if "split" in position:
        columns["split"] = np.array([row[position["split"]] for row in rows])
    return columns
