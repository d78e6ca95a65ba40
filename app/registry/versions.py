"""Model versions and checkpoints: recording a trained version, activating it, and marking
what held erased records purged. Only this module writes these rows.

Which checkpoints and versions hold an erased record is found by the worker, which can read
the artifacts; this module records the verdict in the caller's transaction and returns the
artifact keys to delete once it commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.audit.service import SYSTEM_ACTOR, append_event
from app.core.db import utcnow
from app.registry import purge
from app.registry.enums import PurgeKind, VersionStatus
from app.registry.events import VERSION_ACTIVATED, publish_version_activated
from app.registry.models import MlModel, ModelVersion, ShardCheckpoint
from app.registry.service import next_version_number

ARTIFACT_KEYS = ("weights_key", "record_ids_key", "edits_key")


@dataclass(frozen=True)
class NewVersion:
    """What a finished training or unlearning run produced."""

    method: str
    exact: bool
    manifest: dict[str, Any]
    trained_records: int
    metrics: dict[str, Any]
    checkpoint_rows: Sequence[tuple[str, int, int]]
    id: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass
class PurgePlan:
    """What a purge marked: the sweeper deletes these files once the transaction commits.
    `reference_keys` are the manifest keys of reference models, one per model (the sweeper
    deletes its weights too)."""

    checkpoint_keys: list[str] = field(default_factory=list)
    artifact_keys: list[str] = field(default_factory=list)
    reference_keys: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "checkpoints": len(self.checkpoint_keys),
            "artifacts": len(self.artifact_keys),
            "references": len(self.reference_keys),
        }


def set_data_shape(
    session: Session, *, model_id: uuid.UUID, num_classes: int, input_shape: Sequence[int]
) -> None:
    """Record what the model's dataset looks like when training starts."""
    model = session.get(MlModel, model_id)
    assert model is not None
    model.num_classes = num_classes
    model.input_shape = list(input_shape)


def activate(
    session: Session, *, model_id: uuid.UUID, job_id: uuid.UUID, new: NewVersion
) -> ModelVersion:
    """Add the version and make it the active one; the previous active version is superseded."""
    model = session.get(MlModel, model_id)
    assert model is not None
    parent_id = model.active_version_id
    version = ModelVersion(
        id=new.id,
        model_id=model.id,
        number=next_version_number(session, model_id=model.id),
        parent_id=parent_id,
        status=VersionStatus.ACTIVE,
        method=new.method,
        exact=new.exact,
        manifest=new.manifest,
        trained_records=new.trained_records,
        metrics=new.metrics,
        job_id=job_id,
        activated_at=utcnow(),
    )
    session.add(version)
    make_active(session, model=model, version=version)
    record_checkpoints(session, model_id=model.id, rows=new.checkpoint_rows)
    session.flush()
    announce_activation(session, model=model, version=version, actor=SYSTEM_ACTOR)
    return version


def make_active(session: Session, *, model: MlModel, version: ModelVersion) -> None:
    """`version` becomes the model's active version, its parent the one it replaces, which is
    superseded."""
    previous = model.active_version_id
    if previous is not None and previous != version.id:
        session.execute(
            update(ModelVersion)
            .where(ModelVersion.id == previous, ModelVersion.status == VersionStatus.ACTIVE)
            .values(status=VersionStatus.SUPERSEDED)
        )
    version.status = VersionStatus.ACTIVE
    version.parent_id = previous
    version.activated_at = version.activated_at or utcnow()
    model.active_version_id = version.id


def links(model_id: uuid.UUID) -> dict[str, str]:
    return {"model": f"/v1/models/{model_id}", "versions": f"/v1/models/{model_id}/versions"}


def record_checkpoints(
    session: Session, *, model_id: uuid.UUID, rows: Sequence[tuple[str, int, int]]
) -> None:
    """Add the checkpoint rows a version needs that the model does not have yet."""
    known = set(
        session.scalars(select(ShardCheckpoint.key).where(ShardCheckpoint.model_id == model_id))
    )
    for key, shard, slice_ in rows:
        if key not in known:
            session.add(ShardCheckpoint(model_id=model_id, key=key, shard=shard, slice=slice_))


def announce_activation(
    session: Session, *, model: MlModel, version: ModelVersion, actor: str
) -> None:
    """Audit `model.version_activated` and publish it to the model's webhooks."""
    event = {
        "model_id": str(model.id),
        "version_id": str(version.id),
        "number": version.number,
        "parent_id": str(version.parent_id) if version.parent_id else None,
        "method": version.method,
        "exact": version.exact,
        "links": links(model.id),
    }
    append_event(
        session,
        actor=actor,
        action=VERSION_ACTIVATED,
        entity_type="model",
        entity_id=str(model.id),
        data=event,
    )
    publish_version_activated(session, client_id=model.client_id, data=event)


def live_checkpoint_keys(session: Session, *, model_id: uuid.UUID) -> list[str]:
    return list(
        session.scalars(
            select(ShardCheckpoint.key).where(
                ShardCheckpoint.model_id == model_id, ShardCheckpoint.purged_at.is_(None)
            )
        )
    )


def unpurged_versions(
    session: Session, *, model_id: uuid.UUID, keep: uuid.UUID
) -> list[ModelVersion]:
    """The model's versions other than `keep` whose artifacts still exist."""
    return list(
        session.scalars(
            select(ModelVersion).where(
                ModelVersion.model_id == model_id,
                ModelVersion.id != keep,
                ModelVersion.status != VersionStatus.PURGED,
            )
        )
    )


def mark_purged(
    session: Session,
    *,
    model_id: uuid.UUID,
    checkpoint_keys: Iterable[str],
    version_ids: Iterable[uuid.UUID],
    erased_records: int,
    job_id: uuid.UUID | None = None,
    reference_keys: Iterable[str] = (),
) -> PurgePlan:
    """Mark the checkpoints and versions that held erased records purged, audited, and record
    each file to delete in the purge outbox (`app.registry.purge`), all in the caller's
    transaction. `reference_keys` are the manifest keys of the reference models to delete: the
    worker finds them (those that trained on an erased record, and those no live version
    uses); they have no rows of their own."""
    now = utcnow()
    plan = PurgePlan(
        checkpoint_keys=sorted(set(checkpoint_keys)), reference_keys=sorted(set(reference_keys))
    )
    if plan.checkpoint_keys:
        session.execute(
            update(ShardCheckpoint)
            .where(
                ShardCheckpoint.model_id == model_id,
                ShardCheckpoint.key.in_(plan.checkpoint_keys),
                ShardCheckpoint.purged_at.is_(None),
            )
            .values(purged_at=now)
        )
    for version_id in version_ids:
        version = session.get(ModelVersion, version_id)
        if version is None or version.model_id != model_id:
            continue
        version.status = VersionStatus.PURGED
        version.purged_at = now
        plan.artifact_keys += [
            version.manifest[k] for k in ARTIFACT_KEYS if version.manifest.get(k)
        ]
    for key in plan.checkpoint_keys:
        purge.record(session, kind=PurgeKind.CHECKPOINT, key=key, model_id=model_id, job_id=job_id)
    for key in plan.artifact_keys:
        purge.record(session, kind=PurgeKind.ARTIFACT, key=key, model_id=model_id, job_id=job_id)
    for key in plan.reference_keys:
        purge.record(session, kind=PurgeKind.REFERENCE, key=key, model_id=model_id, job_id=job_id)
    session.flush()
    append_event(
        session,
        actor=SYSTEM_ACTOR,
        action="model.artifacts_purged",
        entity_type="model",
        entity_id=str(model_id),
        data={**plan.counts(), "erased_records": erased_records},
    )
    return plan


def record_test_accuracy(
    session: Session, *, version_id: uuid.UUID, accuracy: float | None
) -> None:
    version = session.get(ModelVersion, version_id)
    assert version is not None
    version.metrics = {**(version.metrics or {}), "test_accuracy": accuracy}


def brief(session: Session, *, version_id: uuid.UUID | None) -> ModelVersion | None:
    return session.get(ModelVersion, version_id) if version_id else None
