"""Batching, one running job per model, and crash recovery, on the real worker."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from app.jobs.models import Job
from tests.conftest import wait_for
from tests.pipeline.helpers import (
    create_model,
    erase,
    register_digits,
    train,
    wait_request,
)


@pytest.fixture(scope="module")
def ml_headers(make_key):
    key = make_key(["lineage:write", "models:write", "requests:write", "requests:read"])
    return {"Authorization": f"Bearer {key}"}


def _people(splits, count: int) -> list[int]:
    subjects, counts = np.unique(splits["train"].subject_ids, return_counts=True)
    return [int(s) for s in subjects[np.argsort(-counts)][:count]]


def _job_of(api, headers, request_id: str) -> str:
    body = api.get(f"/v1/erasure-requests/{request_id}", headers=headers).json()
    [affected] = body["plan"]["models_affected"]
    return affected["job_id"]


def test_requests_within_the_window_make_one_job(api, ml_headers, celery_worker):
    reg = register_digits(api, ml_headers, limit=400)
    dataset_id, splits = reg.dataset_id, reg.splits
    model = create_model(api, ml_headers, dataset_id, strategy="sisa", shards=2, slices=2, epochs=3)
    train(api, ml_headers, model["id"])
    request_ids = [erase(api, ml_headers, reg, person) for person in _people(splits, 3)]
    finals = [wait_request(api, ml_headers, r) for r in request_ids]
    assert [f["status"] for f in finals] == ["completed"] * 3
    job_ids = {_job_of(api, ml_headers, r) for r in request_ids}
    assert len(job_ids) == 1
    job = api.get(f"/v1/jobs/{job_ids.pop()}", headers=ml_headers).json()
    assert sorted(job["request_ids"]) == sorted(request_ids)
    versions = api.get(f"/v1/models/{model['id']}/versions", headers=ml_headers).json()
    assert [v["number"] for v in versions] == [2, 1]


def test_requests_during_a_running_job_join_the_next(api, ml_headers, session, celery_worker):
    reg = register_digits(api, ml_headers, limit=500)
    dataset_id, splits = reg.dataset_id, reg.splits
    model = create_model(
        api, ml_headers, dataset_id, strategy="sisa", shards=2, slices=2, epochs=40
    )
    train(api, ml_headers, model["id"])
    first_person, second_person = _people(splits, 2)
    first = erase(api, ml_headers, reg, first_person)
    first_job = wait_for(lambda: _planned_job(api, ml_headers, first), timeout=60)
    wait_for(
        lambda: api.get(f"/v1/jobs/{first_job}", headers=ml_headers).json()["status"] == "running",
        timeout=60,
    )
    second = erase(api, ml_headers, reg, second_person)
    assert wait_request(api, ml_headers, first)["status"] == "completed"
    assert wait_request(api, ml_headers, second)["status"] == "completed"
    second_job = _job_of(api, ml_headers, second)
    assert second_job != first_job
    jobs = {
        str(j.id): j
        for j in session.scalars(
            select(Job).where(Job.model_id == model["id"], Job.kind == "unlearn")
        )
    }
    session.rollback()
    assert jobs[first_job].finished_at <= jobs[second_job].started_at
    versions = api.get(f"/v1/models/{model['id']}/versions", headers=ml_headers).json()
    assert (versions[0]["number"], versions[0]["status"]) == (3, "active")
    assert sum(v["status"] == "active" for v in versions) == 1


def _planned_job(api, headers, request_id: str) -> str | None:
    body = api.get(f"/v1/erasure-requests/{request_id}", headers=headers).json()
    if body["plan"] and body["plan"]["models_affected"]:
        return body["plan"]["models_affected"][0]["job_id"]
    return None


def test_a_failed_job_leaves_the_previous_version_active(
    api, ml_headers, admin_headers, celery_worker
):
    """Checkpoints lost from the artifact store: the job fails with its reason, the request
    fails, the previous version stays active. Once they are restored, an admin's retry runs a
    new job and completes the request; the failed job of the first attempt no longer counts."""
    import shutil

    from app.core.config import get_settings

    reg = register_digits(api, ml_headers, limit=300)
    model = create_model(api, ml_headers, reg.dataset_id, shards=2, slices=2, epochs=2)
    train(api, ml_headers, model["id"])
    checkpoints = get_settings().resolved_artifact_dir / "models" / model["id"] / "sisa"
    kept = checkpoints.with_name("sisa-kept")
    shutil.copytree(checkpoints, kept)
    shutil.rmtree(checkpoints)

    [person] = _people(reg.splits, 1)
    request_id = erase(api, ml_headers, reg, person)
    final = wait_request(api, ml_headers, request_id)
    assert final["status"] == "failed"
    assert "unlearning job" in final["status_reason"] and "failed" in final["status_reason"]
    job = api.get(f"/v1/jobs/{_job_of(api, ml_headers, request_id)}", headers=ml_headers).json()
    assert job["status"] == "failed" and job["error"]
    active = api.get(f"/v1/models/{model['id']}", headers=ml_headers).json()["active_version"]
    assert active["number"] == 1 and active["status"] == "active"

    kept.rename(checkpoints)
    retried = api.post(f"/v1/erasure-requests/{request_id}/retry", headers=admin_headers)
    assert retried.status_code == 200 and retried.json()["status"] == "received"
    events = api.get(f"/v1/erasure-requests/{request_id}/events", headers=ml_headers).json()
    actions = [e["action"] for e in events]
    assert actions.index("erasure_request.retried") == actions.index("erasure_request.failed") + 1

    final = wait_request(api, ml_headers, request_id)
    assert final["status"] == "completed", final["status_reason"]
    assert [j["status"] for j in final["jobs"]] == ["failed", "succeeded"]
    certificate = api.get(f"/v1/erasure-requests/{request_id}/certificate", headers=ml_headers)
    assert certificate.status_code == 200
    [claims] = certificate.json()["claims"]["models"]
    assert claims["job_id"] == final["jobs"][1]["id"]
    active = api.get(f"/v1/models/{model['id']}", headers=ml_headers).json()["active_version"]
    assert active["number"] == 2
