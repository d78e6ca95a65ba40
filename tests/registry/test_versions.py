"""Model versions on embedded SQLite: activation supersedes, purge marks rows and is audited."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from app.registry import purge, versions
from app.registry.enums import PurgeKind, VersionStatus
from app.registry.models import MlModel, PurgeItem, ShardCheckpoint
from app.registry.versions import NewVersion


def _new(*keys: str, weights: str | None = None) -> NewVersion:
    manifest = {"kind": "sisa", "weights_key": weights} if weights else {"kind": "sisa"}
    return NewVersion(
        method="sisa_train",
        exact=True,
        manifest=manifest,
        trained_records=10,
        metrics={},
        checkpoint_rows=[(key, 0, i) for i, key in enumerate(keys)],
    )


def test_activation_supersedes_and_purge_marks(sqlite_session, model_id):
    first = versions.activate(
        sqlite_session, model_id=model_id, job_id=uuid.uuid4(), new=_new("a", "b", weights="w1")
    )
    second = versions.activate(
        sqlite_session, model_id=model_id, job_id=uuid.uuid4(), new=_new("a", "c")
    )
    model = sqlite_session.get(MlModel, model_id)
    assert model.active_version_id == second.id and second.parent_id == first.id
    assert (first.number, second.number) == (1, 2)
    assert first.status == VersionStatus.SUPERSEDED and second.status == VersionStatus.ACTIVE
    assert sorted(versions.live_checkpoint_keys(sqlite_session, model_id=model_id)) == [
        "a",
        "b",
        "c",
    ]
    assert [
        v.id for v in versions.unpurged_versions(sqlite_session, model_id=model_id, keep=second.id)
    ] == [first.id]

    plan = versions.mark_purged(
        sqlite_session,
        model_id=model_id,
        checkpoint_keys=["b"],
        version_ids=[first.id],
        erased_records=3,
    )
    assert plan.checkpoint_keys == ["b"] and plan.artifact_keys == ["w1"]
    assert plan.counts() == {"checkpoints": 1, "artifacts": 1, "references": 0}
    assert first.status == VersionStatus.PURGED and first.purged_at is not None
    purged = sqlite_session.scalars(
        select(ShardCheckpoint.key).where(ShardCheckpoint.purged_at.is_not(None))
    ).all()
    assert purged == ["b"]
    assert sorted(versions.live_checkpoint_keys(sqlite_session, model_id=model_id)) == ["a", "c"]


def test_activation_and_purge_are_audited(sqlite_session, model_id):
    from app.audit.models import AuditEvent

    version = versions.activate(sqlite_session, model_id=model_id, job_id=uuid.uuid4(), new=_new())
    versions.mark_purged(
        sqlite_session, model_id=model_id, checkpoint_keys=[], version_ids=[], erased_records=1
    )
    versions.record_test_accuracy(sqlite_session, version_id=version.id, accuracy=0.9)
    sqlite_session.commit()
    actions = sqlite_session.scalars(
        select(AuditEvent.action).where(AuditEvent.entity_id == str(model_id))
    ).all()
    assert actions == ["model.version_activated", "model.artifacts_purged"]
    assert version.metrics == {"test_accuracy": 0.9}


def test_reference_models_are_purged_and_counted_under_their_own_kind(sqlite_session, model_id):
    job_id = uuid.uuid4()
    held = ["refs/v1/manifests/001.json", "refs/v1/manifests/000.json"]
    plan = versions.mark_purged(
        sqlite_session,
        model_id=model_id,
        checkpoint_keys=[],
        version_ids=[],
        erased_records=2,
        job_id=job_id,
        reference_keys=[*held, held[0]],
    )
    assert plan.reference_keys == sorted(held)
    assert plan.counts() == {"checkpoints": 0, "artifacts": 0, "references": 2}
    items = sqlite_session.scalars(select(PurgeItem).where(PurgeItem.job_id == job_id)).all()
    assert sorted((i.kind, i.key) for i in items) == [
        (PurgeKind.REFERENCE, k) for k in sorted(held)
    ]
    assert purge.counts_for_job(sqlite_session, job_id=job_id)["references"] == 0  # not yet gone
    for item in items:
        purge.confirm(item)
    sqlite_session.flush()
    assert purge.counts_for_job(sqlite_session, job_id=job_id) == {
        "checkpoints": 0,
        "artifacts": 0,
        "references": 2,
        "object_versions": {},
    }
    purge.confirm(items[0], deleted_from="s3://bucket/lethe", versions_deleted=5)
    purge.confirm(items[1], deleted_from="s3://bucket/lethe", versions_deleted=2)
    sqlite_session.flush()
    assert purge.counts_for_job(sqlite_session, job_id=job_id)["object_versions"] == {
        "s3://bucket/lethe": 7
    }
