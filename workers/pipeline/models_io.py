"""Building, saving and loading the engine's models for a registered model."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
from torch import nn

from app.registry.models import MlModel
from workers.engine.aggregation import ensemble_predict_proba
from workers.engine.architectures import ArchitectureSpec, get_architecture
from workers.engine.device import pick_device
from workers.engine.sisa import iter_shard_models, state_from_bytes, state_to_bytes
from workers.engine.sisa_model import SisaConfig, SisaModel
from workers.engine.training import build_model, predict_proba
from workers.pipeline.storage import (
    artifact_store,
    checkpoint_store,
    put_record_ids,
    record_ids_key,
    weights_key,
)


def spec_for(model: MlModel) -> ArchitectureSpec:
    spec = get_architecture(model.architecture)
    return spec.with_hyperparameters(epochs=model.epochs) if model.epochs else spec


def sisa_config(model: MlModel) -> SisaConfig:
    return SisaConfig(
        shards=model.shards,
        slices=model.slices,
        seed=model.seed,
        epochs=model.epochs,
        aggregation=model.aggregation,  # type: ignore[arg-type]
        shard_key=model.shard_key,  # type: ignore[arg-type]
    )


def save_monolithic(
    *,
    model: MlModel,
    version_id: uuid.UUID,
    network: nn.Module,
    record_ids: np.ndarray,
    input_shape: tuple[int, ...],
    num_classes: int,
    max_record_id: int,
) -> dict[str, Any]:
    """Store a monolithic model's weights and the ids it was trained on; return its manifest."""
    weights = weights_key(model_id=model.id, version_id=version_id)
    records = record_ids_key(model_id=model.id, version_id=version_id)
    state = {k: v.detach().cpu() for k, v in network.state_dict().items()}
    artifact_store().put(key=weights, data=state_to_bytes(state))
    put_record_ids(key=records, record_ids=record_ids)
    spec = spec_for(model)
    return {
        "kind": "monolithic",
        "architecture": spec.name,
        "hyperparameters": spec.hyperparameters(),
        "input_shape": list(input_shape),
        "num_classes": num_classes,
        "weights_key": weights,
        "record_ids_key": records,
        "record_count": int(record_ids.size),
        "max_record_id": max_record_id,
    }


def load_monolithic(*, model: MlModel, manifest: dict[str, Any]) -> nn.Module:
    state = state_from_bytes(artifact_store().get(key=manifest["weights_key"]))
    network = build_model(
        spec=spec_for(model),
        input_shape=tuple(manifest["input_shape"]),
        num_classes=manifest["num_classes"],
        seed=0,
        init_state=state,
    )
    return network.to(pick_device()).eval()  # LETHE_DEVICE: where this worker computes


def predict_version(
    *, model: MlModel, manifest: dict[str, Any], features: np.ndarray
) -> np.ndarray:
    """Class probabilities of a version: SISA shards aggregated, or the monolithic model."""
    shape = tuple(manifest["input_shape"])
    inputs = np.asarray(features, dtype=np.float32).reshape((-1, *shape))
    if manifest.get("kind") == "monolithic":
        return predict_proba(model=load_monolithic(model=model, manifest=manifest), features=inputs)
    sisa = SisaModel.from_dict(manifest)
    shards = iter_shard_models(
        model=sisa, spec=spec_for(model), checkpoints=checkpoint_store(model_id=model.id)
    )
    return ensemble_predict_proba(
        models=(network for _, network in shards), features=inputs, mode=sisa.config.aggregation
    )


def sisa_checkpoint_rows(sisa: SisaModel) -> list[tuple[str, int, int]]:
    return [
        (key, shard.shard, index)
        for shard in sisa.shards
        for index, key in enumerate(shard.slice_keys)
        if key is not None
    ]
