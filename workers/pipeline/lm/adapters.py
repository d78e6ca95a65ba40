"""SISA over adapters for a registered `causal_lm` model: its configuration, its checkpoints in
the model's checkpoint store, and the version manifest that names them.

A checkpoint is stored as any SISA slice checkpoint is (`workers.engine.checkpoints`): the
adapter's weights (safetensors) and a manifest with every record id the adapter has seen, so the
purge and the exact verification read adapters and tabular shards alike. A model with the
`retrain` strategy is the one-shard, one-slice case: erasing from it trains its adapter again
from the base, without the records.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import numpy as np
import safetensors.torch
import torch
from peft import PeftModel
from transformers import PreTrainedTokenizerBase

from app.registry.models import MlModel
from workers.engine.checkpoints import CheckpointStore, SliceManifest
from workers.engine.lm.adapter_sisa import (
    AdapterCheckpoint,
    AdapterSisa,
    AdapterSisaConfig,
    TextRecord,
)
from workers.engine.lm.editing import apply_delta
from workers.engine.lm.finetune import attach_adapter, load_adapter_state
from workers.pipeline.lm.base_store import load_registered_base
from workers.pipeline.storage import artifact_store, checkpoint_store

MANIFEST_KIND = "adapter_sisa"
KEY_SCHEME = "lethe-adapter-sisa-v1"
DEFAULT_STAGE_EPOCHS = 10
EDIT_PREFIX = "mlp_output_projection."  # + the block: a weight edit's name in its file


def adapter_config(model: MlModel) -> AdapterSisaConfig:
    return AdapterSisaConfig(
        shards=model.shards,
        slices=model.slices,
        seed=model.seed,
        stage_epochs=model.epochs or DEFAULT_STAGE_EPOCHS,
        shard_key=model.shard_key,  # type: ignore[arg-type]
    )


def training_of(config: AdapterSisaConfig) -> dict[str, Any]:
    """What every checkpoint of the model was trained with, for its manifest."""
    settings = dataclasses.asdict(config)
    settings["lora"]["target_modules"] = list(config.lora.target_modules)
    return {"scheme": KEY_SCHEME, **settings}


def new_adapter_sisa(model: MlModel) -> AdapterSisa:
    if model.base_model_id is None:
        raise ValueError("a causal_lm model needs a base model")
    base, tokenizer = load_registered_base(model.base_model_id)
    return AdapterSisa(base=base, tokenizer=tokenizer, config=adapter_config(model))


def store_checkpoints(*, model: MlModel, sisa: AdapterSisa) -> None:
    """Put every checkpoint not yet stored."""
    checkpoints = checkpoint_store(model_id=model.id)
    training = training_of(sisa.config)
    for (shard, stage), checkpoint in sorted(sisa.checkpoints.items()):
        if checkpoints.has(key=checkpoint.key):
            continue
        parent = sisa.checkpoints[(shard, stage - 1)].key if stage > 0 else None
        manifest = SliceManifest(
            key=checkpoint.key,
            shard=shard,
            slice=stage,
            parent_key=parent,
            training=training,
            record_ids=np.asarray(checkpoint.record_ids, dtype=np.int64),
        )
        checkpoints.put(manifest=manifest, state=checkpoint.state)


def version_manifest(*, model: MlModel, sisa: AdapterSisa, max_record_id: int) -> dict[str, Any]:
    """Which checkpoints make the version, shard by shard, stage by stage."""
    config = sisa.config
    shards = []
    for shard in range(config.shards):
        last = sisa.checkpoints[(shard, config.slices - 1)]
        shards.append(
            {
                "shard": shard,
                "slice_keys": [sisa.checkpoints[(shard, s)].key for s in range(config.slices)],
                "records": len(last.record_ids),
            }
        )
    return {
        "kind": MANIFEST_KIND,
        "architecture": model.architecture,
        "base_model_id": str(model.base_model_id),
        "training": training_of(config),
        "shards": shards,
        "record_count": sum(s["records"] for s in shards),
        "max_record_id": max_record_id,
    }


def checkpoint_rows(manifest: dict[str, Any]) -> list[tuple[str, int, int]]:
    return [
        (key, shard["shard"], stage)
        for shard in manifest["shards"]
        for stage, key in enumerate(shard["slice_keys"])
    ]


def restore(
    *,
    model: MlModel,
    manifest: dict[str, Any],
    records: list[TextRecord],
    only_shards: set[int] | None = None,
) -> AdapterSisa:
    """The version's adapters as they were trained, from the store, over `records` (the ones
    still to keep and the ones to erase); with `only_shards`, those shards' checkpoints only."""
    sisa = new_adapter_sisa(model)
    if manifest["training"] != training_of(sisa.config):
        raise ValueError("the version was trained with other settings than the model's")
    checkpoints: CheckpointStore = checkpoint_store(model_id=model.id)
    sisa.records = {record.record_id: record for record in records}
    for shard in manifest["shards"]:
        if only_shards is not None and shard["shard"] not in only_shards:
            continue
        for stage, key in enumerate(shard["slice_keys"]):
            stored = checkpoints.get_manifest(key=key)
            sisa.checkpoints[(shard["shard"], stage)] = AdapterCheckpoint(
                key=key,
                shard=shard["shard"],
                stage=stage,
                record_ids=tuple(int(i) for i in stored.record_ids),
                state=checkpoints.get_state(key=key),
            )
    return sisa


def first_stages(*, model: MlModel, manifest: dict[str, Any], erased: np.ndarray) -> dict[int, int]:
    """Per shard whose checkpoints saw an erased record, the earliest stage that did: from the
    stored manifests alone, no weights read."""
    checkpoints = checkpoint_store(model_id=model.id)
    first: dict[int, int] = {}
    for shard in manifest["shards"]:
        for stage, key in enumerate(shard["slice_keys"]):
            if checkpoints.get_manifest(key=key).contains_any(erased):
                first[shard["shard"]] = stage
                break
    return first


def adapter_from_weights(
    *, model: MlModel, manifest: dict[str, Any]
) -> tuple[PeftModel, PreTrainedTokenizerBase]:
    """An approximate version's single adapter (its weights file) on the base, with the
    version's weight edits replayed, in eval mode."""
    sisa = new_adapter_sisa(model)
    adapter = attach_adapter(model=copy.deepcopy(sisa.base), settings=sisa.config.lora, seed=0)
    load_adapter_state(model=adapter, data=artifact_store().get(key=manifest["weights_key"]))
    for layer, delta in version_edits(manifest).items():
        apply_delta(model=adapter, layer=layer, delta=delta)
    return adapter.eval(), sisa.tokenizer


def version_edits(manifest: dict[str, Any]) -> dict[int, torch.Tensor]:
    """The weight edits an approximate version carries, by block: what its edits added to each
    block's MLP output projection, in total (empty when it carries none)."""
    key = manifest.get("edits_key")
    if not key:
        return {}
    stored = safetensors.torch.load(artifact_store().get(key=key))
    return {int(name.removeprefix(EDIT_PREFIX)): delta for name, delta in stored.items()}


def edits_bytes(edits: dict[int, torch.Tensor]) -> bytes:
    return safetensors.torch.save(
        {f"{EDIT_PREFIX}{layer}": delta.contiguous() for layer, delta in sorted(edits.items())}
    )
