"""Exact unlearning of a SISA model, and the check that proves it.

Erasing records retrains each affected shard once, from its earliest slice that holds any of
them, resuming from the checkpoint before it; every other shard stays as it is. The new model is
the one training from scratch without those records would give, bit for bit on the CPU, because
every checkpoint it reuses has the same content address that training would produce.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from workers.engine.architectures import ArchitectureSpec
from workers.engine.checkpoints import CheckpointStore
from workers.engine.data import RecordArrays
from workers.engine.partition import assign_shards
from workers.engine.sisa import (
    ProgressCallback,
    ShardTraining,
    SisaModel,
    train_sisa,
)


@dataclass(frozen=True, eq=False)
class UnlearningResult:
    """The new model and what it took.

    `affected_slices` maps each shard that held an erased record to its earliest slice holding
    one; `shards` says what each of those shards actually retrained and how long it took.
    `superseded_keys` are the previous model's checkpoints that hold erased records: purge them
    once the new model is active.
    """

    model: SisaModel
    erased_record_ids: np.ndarray  # the requested ids the previous model had trained on
    affected_slices: dict[int, int]
    shards: tuple[ShardTraining, ...]
    superseded_keys: tuple[str, ...]
    seconds: float
    shard_models: dict[int, nn.Module]  # the retrained shards' new models

    @property
    def retrained_shards(self) -> dict[int, int]:
        """Shard to the first slice it retrained from."""
        return {s.shard: s.trained_from for s in self.shards if s.trained_from is not None}

    @property
    def stages_trained(self) -> int:
        return sum(shard.stages_trained for shard in self.shards)


@dataclass(frozen=True, eq=False)
class ErasureImpact:
    """Where erased records sit in a model, read from its manifests (not recomputed)."""

    earliest_slices: dict[int, int]  # shard -> its earliest slice holding an erased record
    tainted_keys: list[str]  # every slice checkpoint of the model holding one
    found_record_ids: np.ndarray  # the erased ids the model was trained on


def erasure_impact(
    *, model: SisaModel, checkpoints: CheckpointStore, erased_record_ids: np.ndarray
) -> ErasureImpact:
    """Which shards and slices of `model` hold any of the erased records."""
    earliest: dict[int, int] = {}
    tainted: list[str] = []
    found: list[np.ndarray] = []
    for shard in model.shards:
        if shard.final_key is None:
            continue
        # The last slice's manifest holds every record of the shard: check it before the others.
        final = checkpoints.get_manifest(key=shard.final_key)
        hits = np.intersect1d(erased_record_ids, final.record_ids)
        if hits.size == 0:
            continue
        found.append(hits)
        for stage, key in enumerate(shard.slice_keys):
            if key is not None and checkpoints.get_manifest(key=key).contains_any(hits):
                earliest.setdefault(shard.shard, stage)
                tainted.append(key)
    return ErasureImpact(
        earliest_slices=earliest,
        tainted_keys=tainted,
        found_record_ids=np.sort(np.concatenate(found)) if found else np.zeros(0, np.int64),
    )


def unlearn(
    *,
    model: SisaModel,
    spec: ArchitectureSpec,
    data: RecordArrays,
    erased_record_ids: Iterable[int],
    checkpoints: CheckpointStore,
    device: torch.device | str | None = None,
    progress: ProgressCallback | None = None,
) -> UnlearningResult:
    """Remove the erased records' influence from `model`, exactly.

    `data` is the model's training data (with or without the erased records); shards are
    retrained on `data` minus the erased records. A batch of ids costs one retrain per affected
    shard, from the earliest affected slice.
    """
    started = time.perf_counter()
    if spec.name != model.architecture or spec.hyperparameters() != model.hyperparameters:
        raise ValueError("spec does not match the architecture and hyperparameters of the model")
    requested = np.unique(np.fromiter(erased_record_ids, dtype=np.int64))
    impact = erasure_impact(model=model, checkpoints=checkpoints, erased_record_ids=requested)
    # Only the retrained shards' records are needed; assignment by hash puts each record in the
    # same shard and slice whatever else is in the data, so this subset partitions identically.
    shard_of = assign_shards(
        records=data,
        shards=model.config.shards,
        seed=model.config.seed,
        shard_key=model.config.shard_key,
    )
    keep = np.isin(shard_of, list(impact.earliest_slices)) & ~np.isin(data.record_ids, requested)
    remaining = data.subset(keep)
    if impact.earliest_slices:
        report = train_sisa(
            spec=spec,
            data=remaining,
            num_classes=model.num_classes,
            config=model.config,
            checkpoints=checkpoints,
            device=device,
            progress=progress,
            only_shards=impact.earliest_slices,
            base=model,
        )
        new_model, shards, shard_models = report.model, report.shards, report.shard_models
    else:
        new_model, shards, shard_models = model, (), {}
    return UnlearningResult(
        model=new_model,
        erased_record_ids=impact.found_record_ids,
        affected_slices=impact.earliest_slices,
        shards=shards,
        superseded_keys=tuple(impact.tainted_keys),
        seconds=time.perf_counter() - started,
        shard_models=shard_models,
    )


def verify_exact(
    *, model: SisaModel, checkpoints: CheckpointStore, erased_record_ids: Iterable[int]
) -> list[str]:
    """Keys of the model's slice checkpoints whose manifest holds an erased record (or that are
    missing from the store). An empty list proves none of the records is in the model."""
    erased = np.fromiter(erased_record_ids, dtype=np.int64)
    failures = []
    for key in model.checkpoint_keys():
        if not checkpoints.has(key=key) or checkpoints.get_manifest(key=key).contains_any(erased):
            failures.append(key)
    return failures
