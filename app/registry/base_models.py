"""Pretrained bases of causal language models: what a directory must hold to be registered, and
the registered bases. Reading a directory needs no torch: the parameter count comes from the
safetensors header."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.errors import NotFound, ProblemError
from app.registry.models import PretrainedBase

CAUSAL_LM = "causal_lm"
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")
OPTIONAL_FILES = ("tokenizer_config.json", "special_tokens_map.json", "generation_config.json")
# The adapters target GPT-2's module names (`workers.engine.lm.finetune.GPT2_TARGET_MODULES`).
SUPPORTED_MODEL_TYPES = ("gpt2",)
_HEADER_LIMIT = 100 * 1024**2


class BaseDirectoryError(ValueError):
    """A directory that cannot be registered as a base, and why."""


@dataclass(frozen=True)
class BaseFile:
    name: str
    path: Path
    sha256: str
    size: int


@dataclass(frozen=True)
class BaseDirectory:
    model_type: str
    parameters: int
    files: tuple[BaseFile, ...]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def safetensors_parameters(path: Path) -> int:
    """How many values the tensors of a safetensors file hold, from its JSON header."""
    with path.open("rb") as handle:
        length = int.from_bytes(handle.read(8), "little")
        if not 0 < length <= _HEADER_LIMIT:
            raise BaseDirectoryError("model.safetensors is not a safetensors file")
        try:
            header = json.loads(handle.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise BaseDirectoryError("model.safetensors has an unreadable header") from None
    total = 0
    for name, tensor in header.items():
        if name == "__metadata__":
            continue
        count = 1
        for dim in tensor.get("shape", []):
            count *= int(dim)
        total += count
    return total


def read_base_directory(*, directory: Path) -> BaseDirectory:
    """The files of a Hugging Face model directory that Lethe can fine-tune, checked."""
    if not directory.is_dir():
        raise BaseDirectoryError(f"{directory} is not a directory")
    missing = [name for name in REQUIRED_FILES if not (directory / name).is_file()]
    if missing:
        raise BaseDirectoryError(f"the directory lacks {', '.join(missing)}")
    try:
        config: Any = json.loads((directory / "config.json").read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BaseDirectoryError("config.json is not JSON") from None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise BaseDirectoryError(
            f"config.json's model_type must be one of {', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    names = [*REQUIRED_FILES, *(n for n in OPTIONAL_FILES if (directory / n).is_file())]
    files = tuple(
        BaseFile(
            name=name,
            path=directory / name,
            sha256=file_sha256(directory / name),
            size=(directory / name).stat().st_size,
        )
        for name in names
    )
    return BaseDirectory(
        model_type=str(model_type),
        parameters=safetensors_parameters(directory / "model.safetensors"),
        files=files,
    )


def base_file_key(*, sha256: str) -> str:
    """Where a base's file lives in the artifact store: named by its content."""
    return f"base-models/{sha256}"


def add_base_model(session: Session, *, name: str, read: BaseDirectory) -> PretrainedBase:
    """Record a base whose files are already stored under `base_file_key`."""
    if session.scalar(select(PretrainedBase.id).where(PretrainedBase.name == name)) is not None:
        raise ProblemError(409, "A base model with this name exists", slug="base-model-exists")
    base = PretrainedBase(
        name=name,
        model_type=read.model_type,
        parameters=read.parameters,
        files={
            f.name: {"key": base_file_key(sha256=f.sha256), "sha256": f.sha256, "bytes": f.size}
            for f in read.files
        },
    )
    session.add(base)
    session.flush()
    return base


def list_base_models(session: Session) -> list[PretrainedBase]:
    return list(session.scalars(select(PretrainedBase).order_by(PretrainedBase.name)))


def get_base_model(session: Session, *, base_model_id: uuid.UUID) -> PretrainedBase:
    base = session.get(PretrainedBase, base_model_id)
    if base is None:
        raise NotFound("Base model")
    return base
