"""Training, storing and loading the reference models of one model version.

Reference ``i`` trains, with the model's own architecture and hyperparameters, on the records
of the data subjects that its keyed hash selects (``reference_share`` of them), so every record
has about ``references * (1 - reference_share)`` references that never saw it. This is the cost
of the per-record gate: ``references * reference_share`` retrains' worth of training (8 with the
defaults), paid once per model version, when it is trained, and never per request.

After an erasure, `purge_references` deletes the references that trained on an erased record;
`build_references` on the new version's records then trains only the missing ones and keeps the
rest (they never saw the erased records, and their records are all still in the data). When each
version has its own prefix, `carry_references` first copies the previous version's references
that are still valid for the new records, so that only the others are trained.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from workers.engine.architectures import ArchitectureSpec
from workers.engine.artifacts import ArtifactStore
from workers.engine.data import RecordArrays
from workers.engine.sisa import state_from_bytes, state_to_bytes
from workers.engine.training import EpochProgress, build_model, train_model
from workers.engine.verification.manifests import (
    ReferenceManifest,
    manifest_key,
    read_manifests,
    selected_subjects,
    weights_key,
)
from workers.engine.verification.settings import GateSettings

# Called after each reference model with (references done, references in total).
ReferenceProgress = Callable[[int, int], None]


@dataclass(frozen=True, eq=False)
class ReferenceSet:
    """Loaded reference models (eval mode) with their manifests, in the same order."""

    manifests: tuple[ReferenceManifest, ...]
    models: tuple[nn.Module, ...]


def training_seed(*, seed: int, index: int) -> int:
    """The training seed of reference `index`: distinct per reference and per selection seed."""
    return 1_000_003 * (seed + 1) + index


def _training(
    *, spec: ArchitectureSpec, num_classes: int, input_shape: tuple[int, ...]
) -> dict[str, Any]:
    return {
        **spec.hyperparameters(),
        "num_classes": num_classes,
        "input_shape": list(input_shape),
    }


def build_references(
    *,
    spec: ArchitectureSpec,
    data: RecordArrays,
    num_classes: int,
    settings: GateSettings,
    store: ArtifactStore,
    prefix: str,
    device: torch.device | str | None = None,
    progress: ReferenceProgress | None = None,
    epoch_progress: EpochProgress | None = None,
) -> list[ReferenceManifest]:
    """Train and store the reference models of a model version trained on `data`.

    A reference already stored under `prefix` with the same selection and training, whose
    records are all in `data`, is kept; any other is (re)trained. Weights are stored before
    the manifest, so a manifest is only ever visible for a complete reference. `epoch_progress`
    hears of every epoch of the references trained (a caller that holds a lease renews it).
    """
    training = _training(spec=spec, num_classes=num_classes, input_shape=data.input_shape)
    stored = {m.index: m for m in read_manifests(store=store, prefix=prefix)}
    manifests = []
    for index in range(settings.references):
        kept = stored.get(index)
        if kept is not None and _still_valid(kept, settings=settings, training=training, data=data):
            manifests.append(kept)
        else:
            manifests.append(
                _train_one(
                    spec=spec,
                    data=data,
                    num_classes=num_classes,
                    settings=settings,
                    store=store,
                    prefix=prefix,
                    index=index,
                    training=training,
                    device=device,
                    epoch_progress=epoch_progress,
                )
            )
        if progress is not None:
            progress(index + 1, settings.references)
    return manifests


def _still_valid(
    manifest: ReferenceManifest,
    *,
    settings: GateSettings,
    training: dict[str, Any],
    data: RecordArrays,
) -> bool:
    return (
        manifest.seed == settings.seed
        and manifest.share == settings.reference_share
        and manifest.training == training
        and bool(np.isin(manifest.record_ids, data.record_ids).all())
    )


def _train_one(
    *,
    spec: ArchitectureSpec,
    data: RecordArrays,
    num_classes: int,
    settings: GateSettings,
    store: ArtifactStore,
    prefix: str,
    index: int,
    training: dict[str, Any],
    device: torch.device | str | None,
    epoch_progress: EpochProgress | None,
) -> ReferenceManifest:
    chosen = data.subset(
        selected_subjects(
            subject_ids=data.subject_ids,
            index=index,
            seed=settings.seed,
            share=settings.reference_share,
        )
    )
    if len(chosen) == 0:
        raise ValueError(f"reference {index} selects no records: the data has too few subjects")
    model = train_model(
        spec=spec,
        data=chosen,
        num_classes=num_classes,
        seed=training_seed(seed=settings.seed, index=index),
        device=device,
        progress=epoch_progress,
    )
    state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    manifest = ReferenceManifest(
        prefix=prefix.strip("/"),
        index=index,
        seed=settings.seed,
        share=settings.reference_share,
        training=training,
        record_ids=np.sort(chosen.record_ids),
    )
    store.put(key=weights_key(prefix=prefix, index=index), data=state_to_bytes(state))
    store.put(key=manifest_key(prefix=prefix, index=index), data=manifest.to_json())
    return manifest


def carry_references(
    *,
    store: ArtifactStore,
    source: str,
    target: str,
    spec: ArchitectureSpec,
    data: RecordArrays,
    num_classes: int,
    settings: GateSettings,
) -> list[ReferenceManifest]:
    """Copy to `target` the references under `source` that `build_references` on `data` would
    keep (same selection and training, every record still in `data`); return their manifests,
    rewritten for `target`. The others stay where they are: what happens to them is the
    caller's to decide. Weights go before the manifest, as in `build_references`."""
    training = _training(spec=spec, num_classes=num_classes, input_shape=data.input_shape)
    carried = []
    for manifest in read_manifests(store=store, prefix=source):
        if manifest.index >= settings.references or not _still_valid(
            manifest, settings=settings, training=training, data=data
        ):
            continue
        copy = dataclasses.replace(manifest, prefix=target.strip("/"))
        weights = store.get(key=weights_key(prefix=source, index=manifest.index))
        store.put(key=weights_key(prefix=target, index=copy.index), data=weights)
        store.put(key=manifest_key(prefix=target, index=copy.index), data=copy.to_json())
        carried.append(copy)
    return carried


def load_references(
    *,
    store: ArtifactStore,
    prefix: str,
    spec: ArchitectureSpec,
    device: torch.device | str | None = None,
) -> ReferenceSet:
    """Every reference stored under `prefix`, loaded in eval mode."""
    manifests = tuple(read_manifests(store=store, prefix=prefix))
    models = []
    for manifest in manifests:
        model = build_model(
            spec=spec,
            input_shape=tuple(manifest.training["input_shape"]),
            num_classes=int(manifest.training["num_classes"]),
            seed=0,
            init_state=state_from_bytes(
                store.get(key=weights_key(prefix=manifest.prefix, index=manifest.index))
            ),
        )
        if device is not None:
            model = model.to(device)
        model.eval()
        models.append(model)
    return ReferenceSet(manifests=manifests, models=tuple(models))
