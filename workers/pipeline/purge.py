"""Finding what still holds erased records.

The registry marks the checkpoints and versions purged in the activation's transaction and
records each file in its purge outbox; the sweeper (`workers.pipeline.sweeper`) deletes them.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from app.registry import versions
from app.registry.versions import PurgePlan
from workers.pipeline.storage import (
    artifact_store,
    checkpoint_store,
    get_record_ids,
    weights_prefix,
)


def mark_tainted(
    session: Session,
    *,
    model_id: uuid.UUID,
    erased_record_ids: np.ndarray,
    keep: uuid.UUID,
    job_id: uuid.UUID,
) -> PurgePlan:
    """Have the registry mark purged every checkpoint and version of the model, other than
    `keep`, that holds an erased record; in the caller's transaction."""
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
    held = [
        version.id
        for version in versions.unpurged_versions(session, model_id=model_id, keep=keep)
        if _version_holds(version.manifest, erased, tainted)
    ]
    return versions.mark_purged(
        session,
        model_id=model_id,
        checkpoint_keys=tainted,
        version_ids=held,
        erased_records=int(erased.size),
        job_id=job_id,
    )


def _version_holds(manifest: dict[str, Any], erased: np.ndarray, tainted: list[str]) -> bool:
    if manifest.get("kind") == "monolithic":
        key = manifest.get("record_ids_key")
        if key is None or not artifact_store().exists(key=key):
            return True
        return bool(np.isin(erased, get_record_ids(key=key)).any())
    keys = {k for shard in manifest.get("shards", []) for k in shard["slice_keys"] if k}
    return bool(keys & set(tainted))
