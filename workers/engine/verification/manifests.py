"""What each reference model was trained on, and finding the ones an erasure must purge.

Reference models are trained on personal data, like the model they check: a reference that
trained on an erased record carries it, and must be deleted with the checkpoints that do. Each
one's manifest lists the record ids it trained on. Imports numpy only (no torch): the registry
computes purges with it.

Storage, under the caller's prefix (one per model version): ``{prefix}/manifests/NNN.json`` and
``{prefix}/weights/NNN.pt`` for reference NNN.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workers.engine.artifacts import ArtifactStore
from workers.engine.checkpoints import record_set_digest
from workers.engine.partition import keyed_hash

SCHEME = "lethe-reference-v1"
_FULL_RANGE = 2**64


def selected_subjects(
    *, subject_ids: np.ndarray, index: int, seed: int, share: float
) -> np.ndarray:
    """Whether reference `index` trains on each subject (a keyed hash, so the same subjects
    whatever else the data holds). All of a person's records fall on the same side."""
    hashed = keyed_hash(values=subject_ids, seed=seed, purpose=f"reference-{index}")
    return hashed < np.uint64(int(share * _FULL_RANGE))


def manifest_key(*, prefix: str, index: int) -> str:
    return f"{prefix.strip('/')}/manifests/{index:03d}.json"


def weights_key(*, prefix: str, index: int) -> str:
    return f"{prefix.strip('/')}/weights/{index:03d}.pt"


def reference_files(*, manifest_key: str) -> list[str]:
    """Every blob of the reference whose manifest is (or was) stored under `manifest_key`,
    manifest first: what deleting it deletes. Needs no manifest to read, so a reference whose
    manifest is already gone is still found whole."""
    prefix, sep, name = manifest_key.rpartition("/manifests/")
    if not sep or not name.endswith(".json") or not name[: -len(".json")].isdigit():
        raise ValueError("not a reference manifest key")
    index = int(name[: -len(".json")])
    return [manifest_key, weights_key(prefix=prefix, index=index)]


def stored_references(*, store: ArtifactStore, prefix: str) -> list[str]:
    """The manifest key of every reference that has any blob under `prefix` (a manifest or
    weights), by index: what deleting all of them must cover, half-written ones included."""
    indices = set()
    for folder, suffix in (("manifests", ".json"), ("weights", ".pt")):
        start = f"{prefix.strip('/')}/{folder}/"
        for key in store.list(prefix=start):
            stem = key[len(start) :]
            if stem.endswith(suffix) and stem[: -len(suffix)].isdigit():
                indices.add(int(stem[: -len(suffix)]))
    return [manifest_key(prefix=prefix, index=index) for index in sorted(indices)]


@dataclass(frozen=True, eq=False)
class ReferenceManifest:
    """One reference model: how it was trained and on which records."""

    prefix: str
    index: int
    seed: int  # the selection seed (GateSettings.seed); the training seed derives from it
    share: float
    training: dict[str, Any]  # architecture hyperparameters, num_classes, input_shape
    record_ids: np.ndarray = field(repr=False)  # sorted

    @property
    def artifact_keys(self) -> list[str]:
        """Every blob of this reference: what a purge deletes."""
        return [
            manifest_key(prefix=self.prefix, index=self.index),
            weights_key(prefix=self.prefix, index=self.index),
        ]

    def holds_any(self, record_ids: np.ndarray) -> bool:
        return bool(np.isin(np.asarray(record_ids, dtype=np.int64), self.record_ids).any())

    def unseen(self, *, record_ids: np.ndarray, subject_ids: np.ndarray) -> np.ndarray:
        """Records this reference can speak for as a model that never saw them: not trained on,
        and of a subject its hash leaves out. The second condition treats forget and holdout
        records alike (each is compared with about the same number of references), and keeps a
        record added after the reference was built with the references that exclude its person.
        """
        left_out = ~selected_subjects(
            subject_ids=subject_ids, index=self.index, seed=self.seed, share=self.share
        )
        return left_out & ~np.isin(np.asarray(record_ids, dtype=np.int64), self.record_ids)

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "scheme": SCHEME,
                "prefix": self.prefix,
                "index": self.index,
                "seed": self.seed,
                "share": self.share,
                "training": self.training,
                "records_digest": record_set_digest(self.record_ids),
                "record_ids": self.record_ids.tolist(),
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> ReferenceManifest:
        document = json.loads(raw)
        if document.get("scheme") != SCHEME:
            raise ValueError(f"not a reference manifest: scheme {document.get('scheme')!r}")
        return cls(
            prefix=document["prefix"],
            index=document["index"],
            seed=document["seed"],
            share=document["share"],
            training=document["training"],
            record_ids=np.asarray(document["record_ids"], dtype=np.int64),
        )


def read_manifests(*, store: ArtifactStore, prefix: str) -> list[ReferenceManifest]:
    """Every reference manifest stored under `prefix`, by index."""
    start = f"{prefix.strip('/')}/manifests/"
    return [
        ReferenceManifest.from_json(store.get(key=key))
        for key in store.list(prefix=start)
        if key.endswith(".json")
    ]


def references_holding(
    *, manifests: Iterable[ReferenceManifest], erased_record_ids: Iterable[int]
) -> list[ReferenceManifest]:
    """The references trained on any erased record: they must be purged (and rebuilt)."""
    erased = np.fromiter(erased_record_ids, dtype=np.int64)
    if erased.size == 0:
        return []
    return [manifest for manifest in manifests if manifest.holds_any(erased)]


def purge_references(
    *, store: ArtifactStore, prefix: str, erased_record_ids: Iterable[int]
) -> list[str]:
    """Delete every reference under `prefix` that trained on an erased record; return the
    artifact keys deleted. The manifest goes first, so a half-deleted reference is never
    mistaken for a complete one. The others stay valid: they never saw the erased records."""
    holding = references_holding(
        manifests=read_manifests(store=store, prefix=prefix), erased_record_ids=erased_record_ids
    )
    deleted = []
    for manifest in holding:
        for key in manifest.artifact_keys:
            store.delete(key=key)
            deleted.append(key)
    return deleted
