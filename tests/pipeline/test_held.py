"""A training run that produces a much worse version on the real worker: it is held, the active
version keeps answering, an erasure purges it like any older version, and an admin releases the
next one. And the sweeper's care with a discarded version's checkpoints, which a later version
may own again."""

from __future__ import annotations

import uuid

import numpy as np
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.core.auth import create_client
from app.jobs.enums import JobKind, JobStatus
from app.jobs.models import Job
from app.lineage.service import create_dataset
from app.registry import holds, versions
from app.registry.models import MlModel, PurgeItem
from app.registry.versions import NewVersion
from tests.pipeline.helpers import create_model, register_digits, train, wait_request
from workers.engine.checkpoints import SliceManifest
from workers.pipeline.storage import artifact_store, checkpoint_store
from workers.pipeline.sweeper import sweep


def _poison(train_split, prefix: str, copies: int = 2) -> list[dict]:
    """The training records again, `copies` times, each labelled as the next digit."""
    return [
        {
            "key": f"poison-{copy}-{int(rid)}",
            "identities": [{"type": "user_id", "value": f"{prefix}-poisoner-{int(rid) % 50}"}],
            "features": np.asarray(features, dtype=float).ravel().round(4).tolist(),
            "label": (int(label) + 1) % 10,
            "split": "train",
        }
        for copy in range(copies)
        for rid, features, label in zip(
            train_split.record_ids, train_split.features, train_split.labels, strict=True
        )
    ]


def test_a_much_worse_training_run_is_held_until_an_admin_releases_it(
    api, make_key, admin_headers, session, celery_worker
):
    from workers.pipeline.orphans import scan_orphans

    scopes = ["lineage:write", "models:write", "requests:write", "requests:read"]
    headers = {"Authorization": f"Bearer {make_key(scopes)}"}
    reg = register_digits(api, headers, limit=300)
    model = create_model(api, headers, reg.dataset_id, strategy="retrain")
    first = train(api, headers, model["id"])
    good = first["metrics"]["test_accuracy"]
    assert good > 0.8, first["metrics"]

    posted = api.post(
        f"/v1/datasets/{reg.dataset_id}/records",
        json={"records": _poison(reg.splits["train"], reg.prefix)},
        headers=headers,
    )
    assert posted.status_code == 201, posted.text
    job = train(api, headers, model["id"])  # the job succeeds: its result is the held version
    metrics = job["metrics"]
    assert metrics["held"] is True, metrics
    hold = metrics["hold"]
    assert hold["active_test_accuracy"] == good and hold["threshold"] == 0.10
    assert hold["test_accuracy"] == metrics["test_accuracy"] < good - 0.10
    assert hold["active_version_id"] == first["result_version_id"]

    body = api.get(f"/v1/models/{model['id']}", headers=headers).json()
    assert body["active_version"]["id"] == first["result_version_id"]
    [held] = body["held_versions"]
    assert held["id"] == job["result_version_id"] and held["status"] == "held"
    assert held["metrics"]["hold"] == hold
    listed = api.get(f"/v1/models/{model['id']}/versions", headers=headers).json()
    assert [(v["number"], v["status"]) for v in listed] == [(2, "held"), (1, "active")]
    features = {"features": [reg.splits["test"].features[0].ravel().round(4).tolist()]}
    predicted = api.post(f"/v1/models/{model['id']}/predict", json=features, headers=headers)
    assert predicted.status_code == 200
    assert predicted.json()["version_id"] == first["result_version_id"]
    # The held version's files are owned: the orphan scan leaves them.
    scan_orphans()
    weights = versions.brief(session, version_id=uuid.UUID(held["id"])).manifest["weights_key"]
    session.rollback()
    assert artifact_store().exists(key=weights)

    # Erasing a person only the held version trained on (records newer than the active
    # version's) purges it, as it would any older version holding their records.
    erasure = api.post(
        "/v1/erasure-requests",
        json={"identities": [{"type": "user_id", "value": f"{reg.prefix}-poisoner-0"}]},
        headers=headers,
    )
    assert erasure.status_code == 202, erasure.text
    final = wait_request(api, headers, erasure.json()["id"])
    assert final["status"] == "completed", final.get("status_reason")
    listed = api.get(f"/v1/models/{model['id']}/versions", headers=headers).json()
    assert [(v["number"], v["status"]) for v in listed] == [
        (3, "active"),
        (2, "purged"),
        (1, "superseded"),
    ]
    assert not artifact_store().exists(key=weights)

    # Still poisoned: the next run is held too, until an admin releases it.
    job = train(api, headers, model["id"])
    assert job["metrics"]["held"] is True
    path = f"/v1/models/{model['id']}/versions/{job['result_version_id']}"
    assert api.post(f"{path}/activate", headers=headers).status_code == 403
    released = api.post(f"{path}/activate", headers=admin_headers)
    assert released.status_code == 200, released.text
    assert released.json()["status"] == "active"
    body = api.get(f"/v1/models/{model['id']}", headers=headers).json()
    assert body["active_version"]["number"] == 4 and body["held_versions"] == []
    predicted = api.post(f"/v1/models/{model['id']}/predict", json=features, headers=headers)
    assert predicted.json()["version_id"] == job["result_version_id"]
    again = api.post(f"{path}/discard", headers=admin_headers)
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    assert again.json()["current_status"] == "active"

    actions = session.scalars(
        select(AuditEvent.action).where(AuditEvent.entity_id == model["id"])
    ).all()
    assert actions.count("model.version_held") == 2
    assert "model.version_released" in actions and "model.quality_dropped" not in actions


def _checkpoint(model_id: uuid.UUID, key: str) -> None:
    manifest = SliceManifest(
        key=key, shard=0, slice=0, parent_key=None, training={}, record_ids=np.arange(3)
    )
    checkpoint_store(model_id=model_id).put(manifest=manifest, state=b"state")


def _sisa(*keys: str, accuracy: float) -> NewVersion:
    return NewVersion(
        method="sisa_train",
        exact=True,
        manifest={"kind": "sisa", "shards": [{"shard": 0, "slice_keys": list(keys)}]},
        trained_records=3,
        metrics={"test_accuracy": accuracy},
        checkpoint_rows=[(key, 0, i) for i, key in enumerate(keys)],
    )


def test_a_discarded_checkpoint_waits_for_running_jobs_and_stays_once_owned_again(session):
    """Checkpoints are keyed by content: training on the same records again makes the same one.
    The sweeper leaves a discarded version's checkpoint alone while a job of the model runs (it
    may be reusing it), and keeps it once a live version owns it again."""
    admin = create_client(session, name="held-sweep", scopes=["admin"]).client
    dataset = create_dataset(session, client=admin, name="held", description=None)
    model = MlModel(
        client_id=admin.id, dataset_id=dataset.id, name="m", architecture="mlp", strategy="sisa"
    )
    session.add(model)
    session.flush()
    for key in ("a", "b", "c"):
        _checkpoint(model.id, key)
    versions.activate(session, model_id=model.id, job_id=uuid.uuid4(), new=_sisa("a", accuracy=0.9))
    new = _sisa("a", "b", "c", accuracy=0.2)
    drop = holds.training_drop(session, model_id=model.id, accuracy=0.2)
    assert drop is not None
    held = holds.hold(session, model_id=model.id, job_id=uuid.uuid4(), new=new, drop=drop)
    holds.discard(session, client=admin, model_id=model.id, version_id=held.id)
    # A training run starts before any sweep (in the same commit, so that no beat sweeps first).
    running = Job(kind=JobKind.TRAIN, model_id=model.id, status=JobStatus.RUNNING)
    session.add(running)
    session.commit()

    sweep()  # the worker's beat may sweep too: the items wait all the same
    items = list(session.scalars(select(PurgeItem).where(PurgeItem.model_id == model.id)))
    assert sorted(i.key for i in items) == ["b", "c"]
    assert all(i.confirmed_at is None for i in items)
    store = checkpoint_store(model_id=model.id)
    assert store.has(key="b") and store.has(key="c")

    # The running job trains `c` again and its version is activated; then it ends.
    versions.activate(
        session, model_id=model.id, job_id=running.id, new=_sisa("a", "c", accuracy=0.9)
    )
    running.status = JobStatus.SUCCEEDED
    session.commit()
    sweep()
    session.expire_all()
    assert not store.has(key="b") and store.has(key="c")
    items = list(session.scalars(select(PurgeItem).where(PurgeItem.model_id == model.id)))
    assert all(i.confirmed_at is not None for i in items)
    assert "kept" in next(i.last_error for i in items if i.key == "c")
