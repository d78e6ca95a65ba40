"""Finding what still holds erased records.

The registry marks the checkpoints and versions purged in the activation's transaction and
records each file in its purge outbox; the sweeper (`workers.pipeline.sweeper`) deletes them.

Reference models (`workers.pipeline.references`) go the same way: every reference under a prefix
that no live version names any more, and, when the job closes requests, every reference that
trained on an erased record. A mitigation closes none: the approximate version it activates
still carries the records and is gated with its base's references until the exact job, which
purges that version and them together (and the certificate counts them).
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from app.registry import versions
from app.registry.models import ModelVersion
from app.registry.versions import PurgePlan
from workers.engine.verification.manifests import (
    read_manifests,
    references_holding,
    stored_references,
)
from workers.pipeline.storage import (
    artifact_store,
    checkpoint_store,
    get_record_ids,
    prefix_of,
    weights_prefix,
)


def mark_tainted(
    session: Session,
    *,
    model_id: uuid.UUID,
    erased_record_ids: np.ndarray,
    keep: uuid.UUID,
    job_id: uuid.UUID,
    closes_requests: bool = True,
) -> PurgePlan:
    """Have the registry mark purged every checkpoint and version of the model, other than
    `keep`, that holds an erased record, and the reference models that go with them; in the
    caller's transaction."""
    erased = np.asarray(erased_record_ids, dtype=np.int64)
    if erased.size == 0:
        return PurgePlan()
    checkpoints = checkpoint_store(model_id=model_id)
    weights = weights_prefix(model_id=model_id)
    tainted = [
        key
        for key in versions.live_checkpoint_keys(session, model_id=model_id)
        if not key.startswith(weights)
        and (not checkpoints.has(key=key) or checkpoints.get_manifest(key=key).contains_any(erased))
    ]
    others = versions.unpurged_versions(session, model_id=model_id, keep=keep)
    held = [v for v in others if _version_holds(v.manifest, erased, tainted)]
    kept = session.get(ModelVersion, keep)
    live = [v for v in others if v not in held] + ([kept] if kept is not None else [])
    return versions.mark_purged(
        session,
        model_id=model_id,
        checkpoint_keys=tainted,
        version_ids=[v.id for v in held],
        erased_records=int(erased.size),
        job_id=job_id,
        reference_keys=_references_to_purge(
            held=held, kept=kept, live=live, erased=erased, closes_requests=closes_requests
        ),
    )


def _references_to_purge(
    *,
    held: list[ModelVersion],
    kept: ModelVersion | None,
    live: list[ModelVersion],
    erased: np.ndarray,
    closes_requests: bool,
) -> list[str]:
    """The manifest keys of the reference models to delete. Only the prefixes of the versions
    purged now and of the one activated can hold an erased record: a version's references
    trained on some of its own records, so a version that holds none has none that do."""

    def prefixes(of: list[ModelVersion]) -> set[str]:
        return {prefix for v in of if (prefix := prefix_of(manifest=v.manifest))}

    live_prefixes = prefixes(live)
    touched = prefixes(held) | prefixes([kept] if kept is not None else [])
    store = artifact_store()
    keys: list[str] = []
    for prefix in sorted(touched):
        if prefix not in live_prefixes:
            keys += stored_references(store=store, prefix=prefix)
        elif closes_requests:
            manifests = read_manifests(store=store, prefix=prefix)
            holding = references_holding(manifests=manifests, erased_record_ids=erased)
            keys += [m.artifact_keys[0] for m in holding]
    return keys


def _version_holds(manifest: dict[str, Any], erased: np.ndarray, tainted: list[str]) -> bool:
    if manifest.get("kind") == "monolithic":
        key = manifest.get("record_ids_key")
        if key is None or not artifact_store().exists(key=key):
            return True
        return bool(np.isin(erased, get_record_ids(key=key)).any())
    keys = {k for shard in manifest.get("shards", []) for k in shard["slice_keys"] if k}
    return bool(keys & set(tainted))
