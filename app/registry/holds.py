"""Holding back a much worse version, and an admin's decision on it.

A training run (a `train` job) whose new version's test accuracy is more than
`LETHE_HOLD_ACCURACY_DROP` below the active version's is recorded `held`, with its figures,
instead of being activated: the active version keeps answering. An admin releases it (it
becomes active exactly as an activation makes it) or discards it (the files only it owns go
through the purge outbox).

Erasure jobs are never held, since the law does not wait on quality: a version of theirs that
falls that far is activated all the same, and the fall is flagged (`quality_alert` in the job's
metrics, `model.quality_dropped` in the audit trail).

Together with `app.registry.versions`, the only module that writes version rows. A held version
is a live version: its checkpoints are recorded like an active one's, so the orphan scan keeps
its files and an erasure purges it like any superseded version that holds an erased record.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.audit.service import SYSTEM_ACTOR, append_event
from app.core.auth import ApiClient
from app.core.broker import SWEEP_PURGE, enqueue_after_commit
from app.core.config import get_settings
from app.core.errors import NotFound, ProblemError
from app.jobs.enums import JobStatus
from app.jobs.models import Job
from app.registry import purge, versions
from app.registry.enums import PurgeKind, VersionStatus
from app.registry.events import (
    VERSION_HELD,
    publish_version_held,
)
from app.registry.models import MlModel, ModelVersion, ShardCheckpoint
from app.registry.service import get_model, next_version_number
from app.registry.versions import ARTIFACT_KEYS, NewVersion

QUALITY_DROPPED = "model.quality_dropped"
VERSION_RELEASED = "model.version_released"
VERSION_DISCARDED = "model.version_discarded"
# Versions whose files stay: any other status means their files are gone or going.
OWNING_STATUSES = (VersionStatus.ACTIVE, VersionStatus.SUPERSEDED, VersionStatus.HELD)
# How far back to look for a measured test accuracy (a SISA erasure's version is measured
# only after it is active).
_ANCESTORS = 20


@dataclass(frozen=True)
class AccuracyDrop:
    """How far a new version's test accuracy falls below the active version's."""

    test_accuracy: float
    active_version_id: uuid.UUID
    active_test_accuracy: float
    threshold: float
    measured_on: uuid.UUID  # the active version, or its nearest measured ancestor

    @property
    def drop(self) -> float:
        return round(self.active_test_accuracy - self.test_accuracy, 4)

    def figures(self) -> dict[str, Any]:
        figures: dict[str, Any] = {
            "test_accuracy": self.test_accuracy,
            "active_version_id": str(self.active_version_id),
            "active_test_accuracy": self.active_test_accuracy,
            "accuracy_drop": self.drop,
            "threshold": self.threshold,
        }
        if self.measured_on != self.active_version_id:
            figures["active_test_accuracy_of"] = str(self.measured_on)
        return figures

    def job_metrics(self) -> dict[str, Any]:
        """What a held training job's metrics say."""
        return {"held": True, "hold": self.figures()}


def _figure(metrics: dict[str, Any] | None) -> float | None:
    value = (metrics or {}).get("test_accuracy")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _measured(session: Session, version_id: uuid.UUID) -> tuple[uuid.UUID, float] | None:
    """The version's test accuracy or, not measured yet, its nearest ancestor's."""
    current: uuid.UUID | None = version_id
    for _ in range(_ANCESTORS):
        version = session.get(ModelVersion, current) if current else None
        if version is None:
            return None
        accuracy = _figure(version.metrics)
        if accuracy is not None:
            return version.id, accuracy
        current = version.parent_id
    return None


def accuracy_drop(
    session: Session, *, active_id: uuid.UUID | None, accuracy: float | None
) -> AccuracyDrop | None:
    """The fall from `active_id`'s test accuracy to `accuracy` when it is more than the
    threshold; None when it is not, or when either figure is unknown."""
    if accuracy is None or active_id is None:
        return None
    measured = _measured(session, active_id)
    if measured is None:
        return None
    found = AccuracyDrop(
        test_accuracy=float(accuracy),
        active_version_id=active_id,
        active_test_accuracy=measured[1],
        threshold=get_settings().hold_accuracy_drop,
        measured_on=measured[0],
    )
    return found if found.drop > found.threshold else None


def training_drop(
    session: Session, *, model_id: uuid.UUID, accuracy: float | None
) -> AccuracyDrop | None:
    """For a training run's new version: a fall that means it is to be held, or None."""
    model = session.get(MlModel, model_id)
    return accuracy_drop(
        session, active_id=model.active_version_id if model else None, accuracy=accuracy
    )


def hold(
    session: Session,
    *,
    model_id: uuid.UUID,
    job_id: uuid.UUID,
    new: NewVersion,
    drop: AccuracyDrop,
) -> ModelVersion:
    """Add the version `held`, with its figures and its checkpoints; the active version stays.
    Audited and published (`model.version_held`) in the caller's transaction."""
    model = session.get(MlModel, model_id)
    assert model is not None
    version = ModelVersion(
        id=new.id,
        model_id=model.id,
        number=next_version_number(session, model_id=model.id),
        parent_id=model.active_version_id,
        status=VersionStatus.HELD,
        method=new.method,
        exact=new.exact,
        manifest=new.manifest,
        trained_records=new.trained_records,
        metrics={**new.metrics, "hold": drop.figures()},
        job_id=job_id,
    )
    session.add(version)
    versions.record_checkpoints(session, model_id=model.id, rows=new.checkpoint_rows)
    session.flush()
    event = {
        "model_id": str(model.id),
        "version_id": str(version.id),
        "number": version.number,
        "method": new.method,
        **drop.figures(),
        "links": versions.links(model.id),
    }
    append_event(
        session,
        actor=SYSTEM_ACTOR,
        action=VERSION_HELD,
        entity_type="model",
        entity_id=str(model.id),
        data=event,
    )
    publish_version_held(session, client_id=model.client_id, data=event)
    return version


def flag_quality_drop(session: Session, *, version: ModelVersion) -> dict[str, Any] | None:
    """An erasure's version is active whatever its quality. When its test accuracy is more than
    the threshold below the version it replaced, audit `model.quality_dropped` and return the
    figures (the job's `quality_alert`); else None."""
    drop = accuracy_drop(session, active_id=version.parent_id, accuracy=_figure(version.metrics))
    if drop is None:
        return None
    figures = drop.figures()
    append_event(
        session,
        actor=SYSTEM_ACTOR,
        action=QUALITY_DROPPED,
        entity_type="model",
        entity_id=str(version.model_id),
        data={
            "model_id": str(version.model_id),
            "version_id": str(version.id),
            "number": version.number,
            "job_id": str(version.job_id) if version.job_id else None,
            **figures,
        },
    )
    return figures


def _decidable(
    session: Session, *, client: ApiClient, model_id: uuid.UUID, version_id: uuid.UUID, verb: str
) -> tuple[MlModel, ModelVersion]:
    """The model and its held version, locked; a 409 when the version is not held or a job of
    the model runs (it may be writing the files a decision would touch)."""
    get_model(session, client=client, model_id=model_id)
    model = session.scalar(select(MlModel).where(MlModel.id == model_id).with_for_update())
    version = session.scalar(
        select(ModelVersion)
        .where(ModelVersion.id == version_id, ModelVersion.model_id == model_id)
        .with_for_update()
    )
    if model is None or version is None:
        raise NotFound("Version")
    if version.status != VersionStatus.HELD:
        raise ProblemError(
            409,
            f"Only a held version can be {verb}; this one is `{version.status}`",
            slug="version-not-held",
            current_status=version.status,
        )
    running = session.scalar(
        select(Job.id).where(Job.model_id == model.id, Job.status == JobStatus.RUNNING)
    )
    if running is not None:
        raise ProblemError(
            409,
            "A job of this model is running; decide on the held version once it has finished",
            slug="model-busy",
            job_id=str(running),
        )
    return model, version


def release(
    session: Session, *, client: ApiClient, model_id: uuid.UUID, version_id: uuid.UUID
) -> ModelVersion:
    """An admin releases a held version: it becomes the active one and the active one is
    superseded, as an activation does (audited, `model.version_activated` published)."""
    model, version = _decidable(
        session, client=client, model_id=model_id, version_id=version_id, verb="released"
    )
    previous = model.active_version_id
    active = session.get(ModelVersion, previous) if previous is not None else None
    if active is not None and active.number > version.number:
        raise ProblemError(
            409,
            f"Version {active.number} was activated after this one was held; releasing it "
            "would roll the model back to older data. Discard it, or train again",
            slug="version-stale",
            current_status=version.status,
        )
    versions.make_active(session, model=model, version=version)
    session.flush()
    append_event(
        session,
        actor=client.actor,
        action=VERSION_RELEASED,
        entity_type="model",
        entity_id=str(model.id),
        data={
            "model_id": str(model.id),
            "version_id": str(version.id),
            "number": version.number,
            "superseded_version_id": str(previous) if previous else None,
            **(version.metrics or {}).get("hold", {}),
        },
    )
    versions.announce_activation(session, model=model, version=version, actor=client.actor)
    return version


def _checkpoint_keys(manifest: dict[str, Any]) -> set[str]:
    """The checkpoint rows' keys a version's manifest names (a monolithic model's weights are
    recorded as its one checkpoint)."""
    if manifest.get("kind") == "monolithic":
        return {manifest["weights_key"]} if manifest.get("weights_key") else set()
    return {k for shard in manifest.get("shards", []) for k in shard.get("slice_keys", []) if k}


def _files(manifest: dict[str, Any]) -> set[str]:
    return {manifest[k] for k in ARTIFACT_KEYS if manifest.get(k)}


def _owned_by_others(
    session: Session, *, model_id: uuid.UUID, but: uuid.UUID
) -> tuple[set[str], set[str]]:
    checkpoints: set[str] = set()
    files: set[str] = set()
    for manifest in session.scalars(
        select(ModelVersion.manifest).where(
            ModelVersion.model_id == model_id,
            ModelVersion.id != but,
            ModelVersion.status.in_(list(OWNING_STATUSES)),
        )
    ):
        checkpoints |= _checkpoint_keys(manifest)
        files |= _files(manifest)
    return checkpoints, files


def _record_all(
    session: Session, *, kind: PurgeKind, keys: Iterable[str], model_id: uuid.UUID
) -> None:
    for key in keys:
        purge.record(session, kind=kind, key=key, model_id=model_id)


def discard(
    session: Session, *, client: ApiClient, model_id: uuid.UUID, version_id: uuid.UUID
) -> ModelVersion:
    """An admin discards a held version: `discarded`, and the checkpoints and files that no
    other live version shares go to the purge outbox (their rows are removed, so that a later
    version that trains the same checkpoint again owns it anew); audited."""
    model, version = _decidable(
        session, client=client, model_id=model_id, version_id=version_id, verb="discarded"
    )
    shared_checkpoints, shared_files = _owned_by_others(session, model_id=model.id, but=version.id)
    live = set(
        session.scalars(
            select(ShardCheckpoint.key).where(
                ShardCheckpoint.model_id == model.id, ShardCheckpoint.purged_at.is_(None)
            )
        )
    )
    rows = sorted((_checkpoint_keys(version.manifest) & live) - shared_checkpoints)
    files = sorted(_files(version.manifest) - shared_files)
    checkpoints = [key for key in rows if key not in files]
    if rows:
        session.execute(
            delete(ShardCheckpoint).where(
                ShardCheckpoint.model_id == model.id, ShardCheckpoint.key.in_(rows)
            )
        )
    _record_all(session, kind=PurgeKind.CHECKPOINT, keys=checkpoints, model_id=model.id)
    _record_all(session, kind=PurgeKind.ARTIFACT, keys=files, model_id=model.id)
    version.status = VersionStatus.DISCARDED
    session.flush()
    append_event(
        session,
        actor=client.actor,
        action=VERSION_DISCARDED,
        entity_type="model",
        entity_id=str(model.id),
        data={
            "model_id": str(model.id),
            "version_id": str(version.id),
            "number": version.number,
            "checkpoints": len(checkpoints),
            "artifacts": len(files),
        },
    )
    enqueue_after_commit(session, SWEEP_PURGE, args=[], dedupe_key=SWEEP_PURGE)
    return version
