"""The artifact store and what lives in it for each model."""

from __future__ import annotations

import io
import uuid
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from app.core.config import get_settings
from workers.engine.artifacts import ArtifactStore, LocalArtifactStore
from workers.engine.checkpoints import CheckpointStore
from workers.store.cache import CachedArtifactStore
from workers.store.s3 import S3ArtifactStore, s3_client

REFERENCES_KEY = "references_prefix"  # in a version's manifest


@lru_cache
def artifact_store() -> ArtifactStore:
    """The bucket of `LETHE_ARTIFACT_URL` behind this worker's cache, or else the directory."""
    settings = get_settings()
    if not settings.artifact_url:
        return LocalArtifactStore(root=settings.resolved_artifact_dir)
    return CachedArtifactStore(
        store=s3_store(),
        root=settings.resolved_artifact_cache_dir,
        max_bytes=settings.artifact_cache_bytes,
    )


def s3_store() -> S3ArtifactStore:
    settings = get_settings()
    url = urlsplit(settings.artifact_url)
    secret = settings.s3_secret_access_key
    client = s3_client(
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=secret.get_secret_value() if secret is not None else None,
    )
    return S3ArtifactStore(
        client=client,
        bucket=url.netloc,
        prefix=url.path,
        multipart_threshold=settings.s3_multipart_threshold_bytes,
    )


def artifact_cache() -> CachedArtifactStore | None:
    """This worker's cache of the S3 store; None with a local store."""
    store = artifact_store()
    return store if isinstance(store, CachedArtifactStore) else None


def checkpoint_store(*, model_id: uuid.UUID) -> CheckpointStore:
    return CheckpointStore(store=artifact_store(), prefix=f"models/{model_id}/sisa")


def weights_key(*, model_id: uuid.UUID, version_id: uuid.UUID) -> str:
    return f"{weights_prefix(model_id=model_id)}{version_id}.pt"


def edits_key(*, model_id: uuid.UUID, version_id: uuid.UUID) -> str:
    """A language model version's weight edits, beside its weights (purged with the version)."""
    return f"{weights_prefix(model_id=model_id)}{version_id}.edits.safetensors"


def weights_prefix(*, model_id: uuid.UUID) -> str:
    """Where a monolithic model's version weights live: each is purged with its version."""
    return f"models/{model_id}/weights/"


def references_root(*, model_id: uuid.UUID) -> str:
    """Where an approximate model's reference models live, one folder per exact version."""
    return f"models/{model_id}/references/"


def references_prefix(*, model_id: uuid.UUID, version_id: uuid.UUID) -> str:
    return f"{references_root(model_id=model_id)}{version_id}"


def prefix_of(*, manifest: dict[str, Any]) -> str | None:
    """Where a version's reference models live (its manifest's `REFERENCES_KEY`); None for a
    version that has none."""
    prefix = manifest.get(REFERENCES_KEY)
    return str(prefix) if prefix else None


def record_ids_key(*, model_id: uuid.UUID, version_id: uuid.UUID) -> str:
    return f"models/{model_id}/records/{version_id}.npy"


def put_record_ids(*, key: str, record_ids: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.sort(record_ids.astype(np.int64)), allow_pickle=False)
    artifact_store().put(key=key, data=buffer.getvalue())


def get_record_ids(*, key: str) -> np.ndarray:
    ids: np.ndarray = np.load(io.BytesIO(artifact_store().get(key=key)), allow_pickle=False)
    return ids
