"""The orphan scan: files in the artifact store that no live row owns are deleted, audited.

A crash between writing a checkpoint and recording it, or a deletion lost before the purge
outbox existed, leaves such files; they may hold erased records. Reference models are owned by
the live versions whose manifests name their prefix (`storage.REFERENCES_KEY`): a job that
failed after building them leaves a prefix that no version names. Models with a job pending or
running are skipped (their files may be in flight), so the scan is safe at any time. It runs at
worker start and on beat.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import structlog
from sqlalchemy import select

from app.audit.service import SYSTEM_ACTOR, append_event
from app.jobs import service as jobs_service
from app.registry import versions
from app.registry.enums import VersionStatus
from app.registry.models import MlModel, ModelVersion
from app.registry.versions import ARTIFACT_KEYS
from workers.pipeline.cache_eviction import evict_cached_copies
from workers.pipeline.session import db_session
from workers.pipeline.storage import artifact_store, checkpoint_store, prefix_of, references_root

log = structlog.get_logger(__name__)
MODELS_PREFIX = "models/"


def _model_ids_in_store() -> set[uuid.UUID]:
    ids = set()
    for key in artifact_store().list(prefix=MODELS_PREFIX):
        try:
            ids.add(uuid.UUID(key.split("/")[1]))
        except (IndexError, ValueError):
            continue
    return ids


def _orphan_references(model_id: uuid.UUID, live_versions: Sequence[ModelVersion]) -> list[str]:
    """Reference files under no prefix that a live version's manifest names."""
    owned = {f"{prefix}/" for v in live_versions if (prefix := prefix_of(manifest=v.manifest))}
    return [
        key
        for key in artifact_store().list(prefix=references_root(model_id=model_id))
        if not any(key.startswith(prefix) for prefix in owned)
    ]


def scan_orphans() -> dict[str, int]:
    """Delete unowned checkpoints, version files and reference files; returns how many of each."""
    totals = {"checkpoints": 0, "artifacts": 0, "references": 0}
    deleted_keys: list[str] = []
    store = artifact_store()
    with db_session() as session:
        busy = jobs_service.models_running(session) | jobs_service.models_pending(session)
        for model_id in sorted(_model_ids_in_store() - busy, key=str):
            if session.get(MlModel, model_id) is None:
                continue
            live_checkpoints = set(versions.live_checkpoint_keys(session, model_id=model_id))
            checkpoints = checkpoint_store(model_id=model_id)
            state_prefix = f"{checkpoints.prefix}/checkpoints/"
            stored = set(checkpoints.keys()) | {
                k[len(state_prefix) : -len(".pt")]
                for k in store.list(prefix=state_prefix)
                if k.endswith(".pt")
            }
            orphan_checkpoints = sorted(stored - live_checkpoints)
            for key in orphan_checkpoints:
                checkpoints.delete(key=key)
                deleted_keys += checkpoints.files(key=key)
            live_versions = session.scalars(
                select(ModelVersion).where(
                    ModelVersion.model_id == model_id,
                    # Held versions own their files; discarded ones go to the outbox.
                    ModelVersion.status.not_in([VersionStatus.PURGED, VersionStatus.DISCARDED]),
                )
            ).all()
            live_files = {
                v.manifest[k] for v in live_versions for k in ARTIFACT_KEYS if v.manifest.get(k)
            }
            files = [
                k
                for sub in ("weights/", "records/")
                for k in store.list(prefix=f"{MODELS_PREFIX}{model_id}/{sub}")
            ]
            orphan_files = sorted(set(files) - live_files)
            for key in orphan_files:
                store.delete(key=key)
            orphan_references = _orphan_references(model_id, live_versions)
            for key in orphan_references:
                store.delete(key=key)
            deleted_keys += orphan_files + orphan_references
            if orphan_checkpoints or orphan_files or orphan_references:
                append_event(
                    session,
                    actor=SYSTEM_ACTOR,
                    action="model.orphans_deleted",
                    entity_type="model",
                    entity_id=str(model_id),
                    data={
                        "checkpoints": len(orphan_checkpoints),
                        "artifacts": len(orphan_files),
                        "references": len(orphan_references),
                    },
                )
                totals["checkpoints"] += len(orphan_checkpoints)
                totals["artifacts"] += len(orphan_files)
                totals["references"] += len(orphan_references)
        session.commit()
    if deleted_keys:
        evict_cached_copies(keys=deleted_keys)
    if any(totals.values()):
        log.info("orphans_deleted", **totals)
    return totals
