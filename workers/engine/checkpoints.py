"""Content-addressed SISA slice checkpoints and the manifests that prove what they contain.

A slice checkpoint's key is a hash of the sorted record ids it has been trained on (cumulatively,
through its slice), the key of the checkpoint it continued from, the architecture and
hyperparameters and the seed. Same key, same model: a checkpoint whose key already exists is reused,
never retrained. Imports no torch: the API layer uses this module to find and purge checkpoints
that hold erased records.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workers.engine.artifacts import ArtifactStore

KEY_SCHEME = "lethe-sisa-slice-v1"


def record_set_digest(record_ids: np.ndarray) -> str:
    """sha256 of the sorted, de-duplicated record ids as little-endian int64."""
    ordered = np.unique(np.asarray(record_ids, dtype=np.int64))
    return hashlib.sha256(ordered.astype("<i8").tobytes()).hexdigest()


def checkpoint_key(
    *, record_ids: np.ndarray, parent_key: str | None, training: dict[str, Any]
) -> str:
    """The content address of a slice checkpoint (64 hex characters)."""
    payload = {
        "scheme": KEY_SCHEME,
        "records": record_set_digest(record_ids),
        "parent": parent_key,
        "training": training,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, eq=False)
class SliceManifest:
    """What one slice checkpoint was trained on and how."""

    key: str
    shard: int
    slice: int
    parent_key: str | None
    training: dict[str, Any]  # architecture, hyperparameters, seed, epochs of this slice, ...
    record_ids: np.ndarray = field(repr=False)  # sorted, cumulative through this slice

    def contains_any(self, record_ids: np.ndarray) -> bool:
        return bool(np.isin(np.asarray(record_ids, dtype=np.int64), self.record_ids).any())

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "key": self.key,
                "shard": self.shard,
                "slice": self.slice,
                "parent_key": self.parent_key,
                "training": self.training,
                "record_ids": self.record_ids.tolist(),
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> SliceManifest:
        document = json.loads(raw)
        return cls(
            key=document["key"],
            shard=document["shard"],
            slice=document["slice"],
            parent_key=document["parent_key"],
            training=document["training"],
            record_ids=np.asarray(document["record_ids"], dtype=np.int64),
        )


class CheckpointStore:
    """Slice checkpoints (serialized model state) and their manifests in an artifact store."""

    def __init__(self, *, store: ArtifactStore, prefix: str = "sisa") -> None:
        self.store = store
        self.prefix = prefix.strip("/")

    def _state_key(self, key: str) -> str:
        return f"{self.prefix}/checkpoints/{key}.pt"

    def _manifest_key(self, key: str) -> str:
        return f"{self.prefix}/manifests/{key}.json"

    def has(self, *, key: str) -> bool:
        """Both the state and the manifest are stored."""
        return self.store.exists(key=self._manifest_key(key)) and self.store.exists(
            key=self._state_key(key)
        )

    def put(self, *, manifest: SliceManifest, state: bytes) -> None:
        # State first: a manifest is only ever visible for a checkpoint that is complete.
        self.store.put(key=self._state_key(manifest.key), data=state)
        self.store.put(key=self._manifest_key(manifest.key), data=manifest.to_json())

    def get_state(self, *, key: str) -> bytes:
        return self.store.get(key=self._state_key(key))

    def get_manifest(self, *, key: str) -> SliceManifest:
        return SliceManifest.from_json(self.store.get(key=self._manifest_key(key)))

    def keys(self) -> list[str]:
        """Keys of every stored manifest."""
        start = f"{self.prefix}/manifests/"
        return [
            name[len(start) : -len(".json")]
            for name in self.store.list(prefix=start)
            if name.endswith(".json")
        ]

    def manifests(self) -> Iterator[SliceManifest]:
        for key in self.keys():
            yield self.get_manifest(key=key)

    def files(self, *, key: str) -> list[str]:
        """The blobs of a checkpoint, in the order deleting it deletes them: manifest first, so
        a half-deleted checkpoint is never mistaken for a complete one."""
        return [self._manifest_key(key), self._state_key(key)]

    def delete(self, *, key: str) -> None:
        for blob in self.files(key=key):
            self.store.delete(key=blob)


def find_tainted_checkpoints(
    *, checkpoints: CheckpointStore, erased_record_ids: Iterable[int]
) -> list[SliceManifest]:
    """Every stored checkpoint whose manifest holds any of the erased records."""
    erased = np.fromiter(erased_record_ids, dtype=np.int64)
    if erased.size == 0:
        return []
    return [manifest for manifest in checkpoints.manifests() if manifest.contains_any(erased)]


def purge_tainted_checkpoints(
    *, checkpoints: CheckpointStore, erased_record_ids: Iterable[int], delete: bool = True
) -> list[SliceManifest]:
    """Find, and unless `delete=False` delete, every checkpoint holding an erased record.

    Run it after the model version without those records is active: the previous version's
    checkpoints are among the ones deleted.
    """
    tainted = find_tainted_checkpoints(checkpoints=checkpoints, erased_record_ids=erased_record_ids)
    if delete:
        for manifest in tainted:
            checkpoints.delete(key=manifest.key)
    return tainted
