"""Model versions: recording a new one, activating it, and purging what held erased records."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.audit.service import SYSTEM_ACTOR, append_event
from app.core.db import utcnow
from app.registry.models import MlModel, ModelVersion, ShardCheckpoint
from app.registry.service import ACTIVE, PURGED, SUPERSEDED, next_version_number
from app.webhooks.outbox import emit
from workers.pipeline.storage import artifact_store, checkpoint_store, get_record_ids


@dataclass
class PurgePlan:
    """Artifacts to delete once the new version's transaction has committed."""

    checkpoint_keys: list[str] = field(default_factory=list)
    artifact_keys: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"checkpoints": len(self.checkpoint_keys), "artifacts": len(self.artifact_keys)}


def record_version(
    session: Session,
    *,
    model: MlModel,
    version_id: uuid.UUID,
    parent_id: uuid.UUID | None,
    method: str,
    exact: bool,
    manifest: dict[str, Any],
    trained_records: int,
    metrics: dict[str, Any],
    job_id: uuid.UUID,
    checkpoint_keys: list[tuple[str, int, int]],
) -> ModelVersion:
    """Add the version and activate it; the previous active version is superseded."""
    now = utcnow()
    version = ModelVersion(
        id=version_id,
        model_id=model.id,
        number=next_version_number(session, model_id=model.id),
        parent_id=parent_id,
        status=ACTIVE,
        method=method,
        exact=exact,
        manifest=manifest,
        trained_records=trained_records,
        metrics=metrics,
        job_id=job_id,
        activated_at=now,
    )
    session.add(version)
    if model.active_version_id is not None:
        session.execute(
            update(ModelVersion)
            .where(ModelVersion.id == model.active_version_id, ModelVersion.status == ACTIVE)
            .values(status=SUPERSEDED)
        )
    model.active_version_id = version.id
    known = set(
        session.scalars(select(ShardCheckpoint.key).where(ShardCheckpoint.model_id == model.id))
    )
    for key, shard, slice_ in checkpoint_keys:
        if key not in known:
            session.add(ShardCheckpoint(model_id=model.id, key=key, shard=shard, slice=slice_))
    session.flush()
    event = {
        "model_id": str(model.id),
        "version_id": str(version.id),
        "number": version.number,
        "parent_id": str(parent_id) if parent_id else None,
        "method": method,
        "exact": exact,
        "links": {"model": f"/v1/models/{model.id}", "versions": f"/v1/models/{model.id}/versions"},
    }
    append_event(
        session,
        actor=SYSTEM_ACTOR,
        action="model.version_activated",
        entity_type="model",
        entity_id=str(model.id),
        data=event,
    )
    emit(
        session,
        client_id=model.client_id,
        event_type="model.version_activated",
        data=event,
        subject=f"model:{model.id}",
    )
    return version


def plan_purge(
    session: Session, *, model: MlModel, erased_record_ids: np.ndarray, keep: uuid.UUID
) -> PurgePlan:
    """Mark every other version and checkpoint of the model that holds an erased record purged,
    in the caller's transaction; return the artifacts to delete after it commits."""
    plan = PurgePlan()
    erased = np.asarray(erased_record_ids, dtype=np.int64)
    if erased.size == 0:
        return plan
    checkpoints = checkpoint_store(model_id=model.id)
    rows = session.scalars(
        select(ShardCheckpoint).where(
            ShardCheckpoint.model_id == model.id, ShardCheckpoint.purged_at.is_(None)
        )
    ).all()
    now = utcnow()
    for row in rows:
        if not checkpoints.has(key=row.key) or checkpoints.get_manifest(key=row.key).contains_any(
            erased
        ):
            row.purged_at = now
            plan.checkpoint_keys.append(row.key)
    for version in session.scalars(
        select(ModelVersion).where(
            ModelVersion.model_id == model.id,
            ModelVersion.id != keep,
            ModelVersion.status != PURGED,
        )
    ):
        if _version_holds(version.manifest, erased, plan.checkpoint_keys):
            version.status = PURGED
            version.purged_at = now
            for key in ("weights_key", "record_ids_key"):
                if version.manifest.get(key):
                    plan.artifact_keys.append(version.manifest[key])
    session.flush()
    append_event(
        session,
        actor=SYSTEM_ACTOR,
        action="model.artifacts_purged",
        entity_type="model",
        entity_id=str(model.id),
        data={**plan.counts(), "erased_records": int(erased.size)},
    )
    return plan


def _version_holds(manifest: dict[str, Any], erased: np.ndarray, tainted: list[str]) -> bool:
    if manifest.get("kind") == "monolithic":
        key = manifest.get("record_ids_key")
        if key is None or not artifact_store().exists(key=key):
            return True
        return bool(np.isin(erased, get_record_ids(key=key)).any())
    keys = {k for shard in manifest.get("shards", []) for k in shard["slice_keys"] if k}
    return bool(keys & set(tainted))


def execute_purge(*, model_id: uuid.UUID, plan: PurgePlan) -> None:
    """Delete the artifacts (after the commit; deleting twice is harmless)."""
    checkpoints = checkpoint_store(model_id=model_id)
    for key in plan.checkpoint_keys:
        checkpoints.delete(key=key)
    for key in plan.artifact_keys:
        artifact_store().delete(key=key)
