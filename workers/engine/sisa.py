"""SISA training (Sharded, Isolated, Sliced, Aggregated; Bourtoule et al., 2021).

Records are split into shards by a keyed hash; each shard trains its own model, slice by slice,
each slice stage training on all of the shard's slices so far and checkpointing the result under a
content address (see `checkpoints`). Training a shard starts from its latest stored checkpoint
whose key matches, so a stage whose records, parent, spec and seed are unchanged is never trained
twice: unlearning is training again on the remaining records.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from workers.engine.architectures import ArchitectureSpec
from workers.engine.checkpoints import CheckpointStore, SliceManifest, checkpoint_key
from workers.engine.data import RecordArrays
from workers.engine.device import pick_device
from workers.engine.partition import partition

# SisaConfig and SisaModel are part of this module's API (train_sisa takes and returns them).
from workers.engine.sisa_model import ShardState
from workers.engine.sisa_model import SisaConfig as SisaConfig
from workers.engine.sisa_model import SisaModel as SisaModel
from workers.engine.training import StateDict, build_model, epoch_sizes, train_model


@dataclass(frozen=True)
class ProgressEvent:
    """One epoch finished in `shard`, slice stage `slice`; `fraction` of the call's work done."""

    shard: int
    slice: int
    epoch: int
    epochs: int
    fraction: float


ProgressCallback = Callable[[ProgressEvent], None]


@dataclass(frozen=True)
class ShardTraining:
    """What one call did to one shard: `trained_from` is the first slice stage trained (None when
    every stage was reused)."""

    shard: int
    trained_from: int | None
    stages_trained: int
    seconds: float


@dataclass(frozen=True, eq=False)
class SisaTrainingReport:
    model: SisaModel
    shards: tuple[ShardTraining, ...]  # the shards this call looked at
    seconds: float
    shard_models: dict[int, nn.Module]  # final models of the shards this call trained

    @property
    def stages_trained(self) -> int:
        return sum(shard.stages_trained for shard in self.shards)

    @property
    def retrained_shards(self) -> dict[int, int]:
        """Shard to the first slice stage retrained, for every shard that trained anything."""
        return {s.shard: s.trained_from for s in self.shards if s.trained_from is not None}


def state_to_bytes(state: StateDict) -> bytes:
    buffer = io.BytesIO()
    torch.save({name: tensor.detach().cpu() for name, tensor in state.items()}, buffer)
    return buffer.getvalue()


def state_from_bytes(raw: bytes) -> dict[str, torch.Tensor]:
    state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"expected a saved state dict, got {type(state).__name__}")
    return state


def stage_seed(*, seed: int, shard: int, stage: int) -> int:
    """The seed of one slice stage: its initialization (first stage) and its shuffling."""
    digest = hashlib.sha256(f"lethe-sisa-stage:{seed}:{shard}:{stage}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@dataclass(frozen=True, eq=False)
class _ShardPlan:
    shard: int
    stage_positions: list[np.ndarray]  # cumulative positions into the data, per stage
    manifests: list[SliceManifest | None]  # None for stages without records yet
    resume_from: int  # last stage whose checkpoint is stored, -1 when none

    @property
    def stages_to_train(self) -> list[int]:
        return [
            stage
            for stage in range(self.resume_from + 1, len(self.manifests))
            if self.manifests[stage] is not None
        ]

    @property
    def resume_key(self) -> str | None:
        """The stored checkpoint that training resumes from; None to train from scratch."""
        manifest = self.manifests[self.resume_from] if self.resume_from >= 0 else None
        return manifest.key if manifest is not None else None


class _ProgressTracker:
    """Turns per-epoch callbacks into `ProgressEvent`s, with the share of samples processed."""

    def __init__(self, *, callback: ProgressCallback | None, total: int) -> None:
        self.callback = callback
        self.total = total
        self.done = 0

    def epoch_callback(
        self, *, shard: int, stage: int, sizes: list[int]
    ) -> Callable[[int, int], None]:
        def on_epoch(epoch: int, epochs: int) -> None:
            self.done += sizes[epoch - 1]
            if self.callback is not None:
                fraction = self.done / self.total if self.total else 1.0
                self.callback(
                    ProgressEvent(
                        shard=shard, slice=stage, epoch=epoch, epochs=epochs, fraction=fraction
                    )
                )

        return on_epoch


def _plan_shard(
    *,
    shard: int,
    slice_positions: list[np.ndarray],
    data: RecordArrays,
    training: dict[str, Any],
    checkpoints: CheckpointStore,
) -> _ShardPlan:
    stage_positions: list[np.ndarray] = []
    manifests: list[SliceManifest | None] = []
    parent: str | None = None
    seen = np.zeros(0, dtype=np.int64)
    for stage, positions in enumerate(slice_positions):
        seen = np.concatenate([seen, positions])
        stage_positions.append(seen)
        if seen.size == 0:
            manifests.append(None)
            continue
        record_ids = np.sort(data.record_ids[seen])
        stage_training = {**training, "shard": shard, "slice": stage}
        key = checkpoint_key(record_ids=record_ids, parent_key=parent, training=stage_training)
        manifests.append(
            SliceManifest(
                key=key,
                shard=shard,
                slice=stage,
                parent_key=parent,
                training=stage_training,
                record_ids=record_ids,
            )
        )
        parent = key
    resume_from = -1
    for stage in reversed(range(len(manifests))):
        manifest = manifests[stage]
        if manifest is not None and checkpoints.has(key=manifest.key):
            resume_from = stage
            break
    return _ShardPlan(
        shard=shard, stage_positions=stage_positions, manifests=manifests, resume_from=resume_from
    )


def train_sisa(
    *,
    spec: ArchitectureSpec,
    data: RecordArrays,
    num_classes: int,
    config: SisaConfig,
    checkpoints: CheckpointStore,
    device: torch.device | str | None = None,
    progress: ProgressCallback | None = None,
    only_shards: Iterable[int] | None = None,
    base: SisaModel | None = None,
    keep_models: bool = True,
) -> SisaTrainingReport:
    """Train (or bring up to date) every shard of a SISA model on `data`.

    Each shard resumes from its latest stored checkpoint whose key matches and trains only the
    stages after it. With `only_shards`, the other shards are copied from `base` unchanged.
    Without `keep_models` the report holds no shard model: each is dropped once checkpointed,
    so memory stays at one shard's whatever the number of shards.
    """
    started = time.perf_counter()
    target = torch.device(device) if device is not None else pick_device()
    if only_shards is not None and base is None:
        raise ValueError("only_shards needs the base model whose other shards are kept")
    selected = sorted(set(range(config.shards) if only_shards is None else only_shards))
    epochs = config.slice_epochs(spec=spec)
    training = {
        "hyperparameters": spec.hyperparameters(),
        "seed": config.seed,
        "shards": config.shards,
        "slices": config.slices,
        "shard_key": config.shard_key,
        "slice_epochs": epochs,
        "input_shape": list(data.input_shape),
        "num_classes": num_classes,
    }
    layout = partition(
        records=data,
        shards=config.shards,
        slices=config.slices,
        seed=config.seed,
        shard_key=config.shard_key,
    )
    plans = [
        _plan_shard(
            shard=shard,
            slice_positions=layout[shard],
            data=data,
            training=training,
            checkpoints=checkpoints,
        )
        for shard in selected
    ]
    tracker = _ProgressTracker(
        callback=progress,
        total=sum(
            sum(epoch_sizes(records=plan.stage_positions[stage].size, epochs=epochs))
            for plan in plans
            for stage in plan.stages_to_train
        ),
    )

    shard_reports: list[ShardTraining] = []
    shard_models: dict[int, nn.Module] = {}
    for plan in plans:
        shard_started = time.perf_counter()
        to_train = plan.stages_to_train
        state: StateDict | None = None
        if to_train and plan.resume_key is not None:
            state = state_from_bytes(checkpoints.get_state(key=plan.resume_key))
        model: nn.Module | None = None
        for stage in to_train:
            manifest = plan.manifests[stage]
            assert manifest is not None
            positions = plan.stage_positions[stage]
            sizes = epoch_sizes(records=positions.size, epochs=epochs)

            model = train_model(
                spec=spec,
                data=data.subset(positions),
                num_classes=num_classes,
                seed=stage_seed(seed=config.seed, shard=plan.shard, stage=stage),
                epochs=epochs,
                device=target,
                progress=tracker.epoch_callback(shard=plan.shard, stage=stage, sizes=sizes),
                init_state=state,
            )
            state = {
                name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()
            }
            checkpoints.put(manifest=manifest, state=state_to_bytes(state))
        if model is not None and keep_models:
            shard_models[plan.shard] = model
        shard_reports.append(
            ShardTraining(
                shard=plan.shard,
                trained_from=to_train[0] if to_train else None,
                stages_trained=len(to_train),
                seconds=time.perf_counter() - shard_started,
            )
        )

    states = {shard.shard: shard for shard in base.shards} if base is not None else {}
    for plan in plans:
        states[plan.shard] = ShardState(
            shard=plan.shard,
            slice_keys=tuple(m.key if m is not None else None for m in plan.manifests),
            records=int(plan.stage_positions[-1].size) if plan.stage_positions else 0,
        )
    model_manifest = SisaModel(
        architecture=spec.name,
        hyperparameters=spec.hyperparameters(),
        config=config,
        input_shape=data.input_shape,
        num_classes=num_classes,
        shards=tuple(states[shard] for shard in sorted(states)),
    )
    return SisaTrainingReport(
        model=model_manifest,
        shards=tuple(shard_reports),
        seconds=time.perf_counter() - started,
        shard_models=shard_models,
    )


def iter_shard_models(
    *,
    model: SisaModel,
    spec: ArchitectureSpec,
    checkpoints: CheckpointStore,
    device: torch.device | str | None = None,
) -> Iterator[tuple[int, nn.Module]]:
    """The final model of every shard that has records, loaded from its checkpoint one at a
    time: a caller that drops each before the next holds one shard's model in memory."""
    target = torch.device(device) if device is not None else pick_device()
    for shard in model.shards:
        if shard.final_key is None:
            continue
        state = state_from_bytes(checkpoints.get_state(key=shard.final_key))
        module = build_model(
            spec=spec,
            input_shape=model.input_shape,
            num_classes=model.num_classes,
            seed=0,
            init_state=state,
        )
        yield shard.shard, module.to(target).eval()


def load_shard_models(
    *,
    model: SisaModel,
    spec: ArchitectureSpec,
    checkpoints: CheckpointStore,
    device: torch.device | str | None = None,
) -> dict[int, nn.Module]:
    """The final model of every shard that has records, loaded from its checkpoint."""
    return dict(iter_shard_models(model=model, spec=spec, checkpoints=checkpoints, device=device))
