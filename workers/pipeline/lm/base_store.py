"""Registered base models: their files put in the artifact store, and each worker's local copy
of them, checked against their SHA-256, to load."""

from __future__ import annotations

import hashlib
import uuid
from functools import lru_cache
from pathlib import Path

import torch
from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

from app.core.config import get_settings
from app.registry.base_models import add_base_model, file_sha256, read_base_directory
from app.registry.models import PretrainedBase
from app.registry.schemas import BaseModelOut
from workers.engine.artifacts import write_atomically
from workers.engine.device import pick_device
from workers.engine.lm.base import load_base
from workers.pipeline.session import db_session
from workers.pipeline.storage import artifact_store


def register_base_directory(*, directory: Path, name: str) -> BaseModelOut:
    """Check `directory`, store its files, record the base. Raises `BaseDirectoryError` for a
    directory that cannot be a base and `ProblemError` (409) for a name already taken."""
    read = read_base_directory(directory=directory)
    store = artifact_store()
    with db_session() as session:
        base = add_base_model(session, name=name, read=read)
        for file, entry in zip(read.files, base.files.values(), strict=True):
            store.put(key=entry["key"], data=file.path.read_bytes())
        out = BaseModelOut.model_validate(base)
        session.commit()
    return out


def _local_copy(*, base_model_id: uuid.UUID, files: dict[str, dict[str, str]]) -> Path:
    """The base's files in this worker's var directory, fetched from the store unless a copy
    with the right content is there already."""
    directory = (get_settings().var_dir / "base-models" / str(base_model_id)).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    store = artifact_store()
    for name, entry in files.items():
        target = directory / name
        if target.is_file() and file_sha256(target) == entry["sha256"]:
            continue
        data = store.get(key=entry["key"])
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise RuntimeError(f"the stored {name} of base model {base_model_id} is corrupt")
        write_atomically(target, data)
    return directory


@lru_cache(maxsize=2)
def load_registered_base(
    base_model_id: uuid.UUID,
) -> tuple[GPT2LMHeadModel, PreTrainedTokenizerFast]:
    """The base model (on this worker's device, in eval mode) and its tokenizer. Callers copy
    the model before attaching adapters: the cached one stays as registered."""
    with db_session() as session:
        base = session.get(PretrainedBase, base_model_id)
        if base is None:
            raise ValueError("the model's base model is not registered")
        files = dict(base.files)
    model, tokenizer = load_base(directory=_local_copy(base_model_id=base_model_id, files=files))
    torch.nn.Module.to(model, pick_device())  # transformers types `to` for dtypes only
    return model, tokenizer
