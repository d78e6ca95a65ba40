"""Held versions on embedded SQLite: a training result much worse than the active version is
held (on the threshold, not), released or discarded by an admin, and refused with a 409 when it
is not held or the model has a job running; an erasure's version is flagged, never held."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.core.config import get_settings
from app.core.errors import ProblemError
from app.jobs.enums import JobKind, JobStatus
from app.jobs.models import Job
from app.registry import holds, versions
from app.registry.enums import PurgeKind, VersionStatus
from app.registry.models import MlModel, ModelVersion, PurgeItem, ShardCheckpoint
from app.registry.versions import NewVersion


def _sisa(*keys: str, accuracy: float | None) -> NewVersion:
    return NewVersion(
        method="sisa_train",
        exact=True,
        manifest={"kind": "sisa", "shards": [{"shard": 0, "slice_keys": list(keys)}]},
        trained_records=10,
        metrics={} if accuracy is None else {"test_accuracy": accuracy},
        checkpoint_rows=[(key, 0, i) for i, key in enumerate(keys)],
    )


def _monolithic(accuracy: float) -> NewVersion:
    version_id = uuid.uuid4()
    weights, records = f"w/{version_id}.pt", f"r/{version_id}.npy"
    return NewVersion(
        id=version_id,
        method="train",
        exact=True,
        manifest={"kind": "monolithic", "weights_key": weights, "record_ids_key": records},
        trained_records=10,
        metrics={"test_accuracy": accuracy},
        checkpoint_rows=[(weights, 0, 0)],
    )


@pytest.fixture
def admin(sqlite_session):
    from app.core.auth import create_client

    return create_client(sqlite_session, name="fast-admin", scopes=["admin"]).client


def _held(session, model_id, new: NewVersion) -> ModelVersion:
    drop = holds.training_drop(session, model_id=model_id, accuracy=new.metrics["test_accuracy"])
    assert drop is not None
    return holds.hold(session, model_id=model_id, job_id=uuid.uuid4(), new=new, drop=drop)


def _actions(session, model_id) -> list[str]:
    session.commit()  # audit events are written as the transaction commits
    return list(
        session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.entity_id == str(model_id))
            .order_by(AuditEvent.seq)
        )
    )


def test_a_fall_of_more_than_the_threshold_holds(sqlite_session, model_id, monkeypatch):
    session = sqlite_session
    assert holds.training_drop(session, model_id=model_id, accuracy=0.1) is None  # nothing active
    active = versions.activate(
        session, model_id=model_id, job_id=uuid.uuid4(), new=_sisa("a", accuracy=0.97)
    )
    assert get_settings().hold_accuracy_drop == 0.10
    assert holds.training_drop(session, model_id=model_id, accuracy=0.87) is None  # on it
    assert holds.training_drop(session, model_id=model_id, accuracy=None) is None
    drop = holds.training_drop(session, model_id=model_id, accuracy=0.86)
    assert drop is not None and drop.drop == 0.11
    assert drop.job_metrics() == {
        "held": True,
        "hold": {
            "test_accuracy": 0.86,
            "active_version_id": str(active.id),
            "active_test_accuracy": 0.97,
            "accuracy_drop": 0.11,
            "threshold": 0.10,
        },
    }
    monkeypatch.setattr(get_settings(), "hold_accuracy_drop", 0.7)
    assert holds.training_drop(session, model_id=model_id, accuracy=0.30) is None
    monkeypatch.setattr(get_settings(), "hold_accuracy_drop", 0.5)
    assert holds.training_drop(session, model_id=model_id, accuracy=0.30) is not None

    # A version not measured yet (a SISA erasure's) compares through its nearest ancestor.
    unmeasured = versions.activate(
        session, model_id=model_id, job_id=uuid.uuid4(), new=_sisa("a", accuracy=None)
    )
    drop = holds.training_drop(session, model_id=model_id, accuracy=0.30)
    assert drop is not None and drop.active_version_id == unmeasured.id
    assert drop.figures()["active_test_accuracy_of"] == str(active.id)


def test_a_held_version_is_recorded_but_not_active(sqlite_session, model_id):
    session = sqlite_session
    active = versions.activate(
        session, model_id=model_id, job_id=uuid.uuid4(), new=_sisa("a", "b", accuracy=0.97)
    )
    held = _held(session, model_id, _sisa("a", "c", accuracy=0.30))
    model = session.get(MlModel, model_id)
    assert model.active_version_id == active.id and active.status == VersionStatus.ACTIVE
    assert held.status == VersionStatus.HELD and held.activated_at is None
    assert (held.number, held.parent_id) == (2, active.id)
    assert held.metrics["hold"]["accuracy_drop"] == 0.67
    assert held.metrics["test_accuracy"] == 0.30
    # Its checkpoints are live (the orphan scan keeps them), and an erasure sees it.
    assert sorted(versions.live_checkpoint_keys(session, model_id=model_id)) == ["a", "b", "c"]
    assert held.id in {
        v.id for v in versions.unpurged_versions(session, model_id=model_id, keep=active.id)
    }
    assert _actions(session, model_id) == ["model.version_activated", "model.version_held"]


def test_release_activates_it_and_supersedes_the_active(sqlite_session, model_id, admin):
    session = sqlite_session
    active = versions.activate(
        session, model_id=model_id, job_id=uuid.uuid4(), new=_sisa("a", accuracy=0.97)
    )
    held = _held(session, model_id, _sisa("b", accuracy=0.30))
    with pytest.raises(ProblemError) as refused:
        holds.release(session, client=admin, model_id=model_id, version_id=active.id)
    assert refused.value.status == 409 and refused.value.slug == "version-not-held"

    running = Job(kind=JobKind.TRAIN, model_id=model_id, status=JobStatus.RUNNING)
    session.add(running)
    session.flush()
    with pytest.raises(ProblemError) as busy:
        holds.release(session, client=admin, model_id=model_id, version_id=held.id)
    assert busy.value.status == 409 and busy.value.slug == "model-busy"
    running.status = JobStatus.SUCCEEDED

    released = holds.release(session, client=admin, model_id=model_id, version_id=held.id)
    assert released.status == VersionStatus.ACTIVE and released.activated_at is not None
    assert session.get(MlModel, model_id).active_version_id == held.id
    session.refresh(active)
    assert active.status == VersionStatus.SUPERSEDED
    assert _actions(session, model_id)[-2:] == [
        "model.version_released",
        "model.version_activated",
    ]
    with pytest.raises(ProblemError) as again:
        holds.discard(session, client=admin, model_id=model_id, version_id=held.id)
    assert again.value.status == 409
    with pytest.raises(ProblemError) as missing:
        holds.release(session, client=admin, model_id=model_id, version_id=uuid.uuid4())
    assert missing.value.status == 404


def test_a_held_version_overtaken_by_a_newer_one_cannot_be_released(
    sqlite_session, model_id, admin
):
    session = sqlite_session
    versions.activate(
        session, model_id=model_id, job_id=uuid.uuid4(), new=_sisa("a", accuracy=0.97)
    )
    held = _held(session, model_id, _sisa("b", accuracy=0.30))
    newer = versions.activate(
        session, model_id=model_id, job_id=uuid.uuid4(), new=_sisa("c", accuracy=0.96)
    )
    with pytest.raises(ProblemError) as stale:
        holds.release(session, client=admin, model_id=model_id, version_id=held.id)
    assert stale.value.status == 409 and stale.value.slug == "version-stale"
    assert session.get(MlModel, model_id).active_version_id == newer.id
    discarded = holds.discard(session, client=admin, model_id=model_id, version_id=held.id)
    assert discarded.status == VersionStatus.DISCARDED


def test_discard_sends_only_its_own_files_to_the_outbox(sqlite_session, model_id, admin):
    session = sqlite_session
    versions.activate(
        session, model_id=model_id, job_id=uuid.uuid4(), new=_sisa("a", "b", accuracy=0.97)
    )
    held = _held(session, model_id, _sisa("a", "c", "d", accuracy=0.30))
    discarded = holds.discard(session, client=admin, model_id=model_id, version_id=held.id)
    assert discarded.status == VersionStatus.DISCARDED
    items = session.scalars(
        select(PurgeItem).where(PurgeItem.model_id == model_id).order_by(PurgeItem.id)
    ).all()
    assert [(i.kind, i.key, i.job_id, i.request_id) for i in items] == [
        (PurgeKind.CHECKPOINT, "c", None, None),
        (PurgeKind.CHECKPOINT, "d", None, None),
    ]
    # Its rows are gone, so a later version that trains the same checkpoint owns it anew.
    assert sorted(versions.live_checkpoint_keys(session, model_id=model_id)) == ["a", "b"]
    rows = select(ShardCheckpoint.key).where(ShardCheckpoint.model_id == model_id)
    assert sorted(session.scalars(rows)) == ["a", "b"]
    assert _actions(session, model_id)[-1] == "model.version_discarded"
    [event] = session.scalars(
        select(AuditEvent.data).where(
            AuditEvent.entity_id == str(model_id), AuditEvent.action == "model.version_discarded"
        )
    ).all()
    assert event["checkpoints"] == 2 and event["artifacts"] == 0


def test_discarding_a_monolithic_version_purges_its_weights_and_records(
    sqlite_session, model_id, admin
):
    session = sqlite_session
    versions.activate(session, model_id=model_id, job_id=uuid.uuid4(), new=_monolithic(0.97))
    new = _monolithic(0.2)
    held = _held(session, model_id, new)
    holds.discard(session, client=admin, model_id=model_id, version_id=held.id)
    items = session.scalars(select(PurgeItem).where(PurgeItem.model_id == model_id)).all()
    assert sorted((i.kind, i.key) for i in items) == [
        (PurgeKind.ARTIFACT, new.manifest["record_ids_key"]),
        (PurgeKind.ARTIFACT, new.manifest["weights_key"]),
    ]
    assert new.manifest["weights_key"] not in versions.live_checkpoint_keys(
        session, model_id=model_id
    )


def test_an_erasure_version_is_flagged_not_held(sqlite_session, model_id):
    session = sqlite_session
    versions.activate(
        session, model_id=model_id, job_id=uuid.uuid4(), new=_sisa("a", accuracy=0.97)
    )
    fine = versions.activate(
        session, model_id=model_id, job_id=uuid.uuid4(), new=_sisa("b", accuracy=0.95)
    )
    assert holds.flag_quality_drop(session, version=fine) is None
    worse = versions.activate(
        session, model_id=model_id, job_id=uuid.uuid4(), new=_sisa("c", accuracy=0.40)
    )
    alert = holds.flag_quality_drop(session, version=worse)
    assert alert is not None and alert["accuracy_drop"] == 0.55
    assert alert["active_version_id"] == str(fine.id)
    assert worse.status == VersionStatus.ACTIVE
    assert _actions(session, model_id)[-1] == "model.quality_dropped"
