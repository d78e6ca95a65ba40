"""A `causal_lm` version as one model that answers prompts: the shard adapters' ensemble of an
exact version, or the single adapter of an approximate one. Kept loaded for the last versions
asked for, so a burst of prompts loads the base once."""

from __future__ import annotations

import uuid
from functools import lru_cache

import torch
from transformers import PreTrainedTokenizerBase

from app.registry.models import MlModel, ModelVersion
from workers.engine.lm.scoring import generate
from workers.pipeline.lm.adapters import MANIFEST_KIND, adapter_from_weights, restore
from workers.pipeline.session import db_session


@lru_cache(maxsize=2)
def _serving_model(
    model_id: uuid.UUID, version_id: uuid.UUID
) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    with db_session() as session:
        model = session.get(MlModel, model_id)
        version = session.get(ModelVersion, version_id)
        if model is None or version is None:
            raise ValueError("the model or its version no longer exists")
        session.expunge_all()
    if version.manifest.get("kind") == MANIFEST_KIND:
        sisa = restore(model=model, manifest=version.manifest, records=[])
        return sisa.ensemble(), sisa.tokenizer
    return adapter_from_weights(model=model, manifest=version.manifest)


def generate_completions(
    *, model_id: uuid.UUID, version_id: uuid.UUID, prompts: list[str], max_new_tokens: int
) -> list[str]:
    model, tokenizer = _serving_model(model_id, version_id)
    with torch.no_grad():
        return [
            generate(model=model, tokenizer=tokenizer, prompt=prompt, max_new_tokens=max_new_tokens)
            for prompt in prompts
        ]
