"""The jobs service on embedded SQLite: creation, batching, claiming, stages and the hook that
lets requests follow their jobs."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from app.core.errors import NotFound, ProblemError
from app.jobs import service as jobs
from app.jobs.enums import JobKind, JobStage, JobStatus

LEASE = timedelta(seconds=30)


@pytest.fixture
def seen():
    """Record every change the jobs service announces."""
    changes: list[tuple[uuid.UUID, str, str]] = []

    def listener(session, job, change) -> None:
        changes.append((job.id, job.status, job.stage, change))

    jobs.on_job_change(listener)
    yield changes
    jobs.remove_job_listener(listener)


def test_training_a_busy_model_is_refused(sqlite_session, model_id, client_id):
    first = jobs.create_train_job(
        sqlite_session, model_id=model_id, client_id=client_id, max_attempts=3
    )
    assert (first.kind, first.status, first.stage) == (JobKind.TRAIN, JobStatus.PENDING, "queued")
    with pytest.raises(ProblemError) as busy:
        jobs.create_train_job(
            sqlite_session, model_id=model_id, client_id=client_id, max_attempts=3
        )
    assert busy.value.status == 409 and busy.value.extensions["job_id"] == str(first.id)
    assert jobs.is_training(sqlite_session, model_id=model_id)


def _request(session, client_id) -> uuid.UUID:
    from app.core.db import utcnow
    from app.erasure.models import ErasureRequest

    request = ErasureRequest(
        client_id=client_id,
        status="planned",
        identities=[],
        received_at=utcnow(),
        due_at=utcnow(),
        updated_at=utcnow(),
    )
    session.add(request)
    session.flush()
    return request.id


def test_requests_for_one_model_share_its_pending_job(sqlite_session, model_id, client_id):
    first, second = _request(sqlite_session, client_id), _request(sqlite_session, client_id)
    attach = {
        "model_id": model_id,
        "client_id": client_id,
        "window": timedelta(0),
        "max_attempts": 3,
    }
    job = jobs.attach_request(sqlite_session, request_id=first, attempt=1, **attach)
    same = jobs.attach_request(sqlite_session, request_id=second, attempt=2, **attach)
    assert same.id == job.id and job.kind == JobKind.UNLEARN
    assert jobs.request_attempts(sqlite_session, job_id=job.id) == sorted([(first, 1), (second, 2)])
    assert [j.id for j in jobs.jobs_of_request(sqlite_session, request_id=second, attempt=2)] == [
        job.id
    ]
    assert jobs.jobs_of_request(sqlite_session, request_id=second, attempt=1) == []


def test_claim_stages_and_end_are_announced(sqlite_session, model_id, client_id, seen):
    job = jobs.create_train_job(
        sqlite_session, model_id=model_id, client_id=client_id, max_attempts=3
    )
    claimed = jobs.claim(sqlite_session, job_id=job.id, worker="w1", lease=LEASE)
    assert claimed is job and job.status == JobStatus.RUNNING and job.attempts == 1
    assert jobs.claim(sqlite_session, job_id=job.id, worker="w2", lease=LEASE) is None
    jobs.enter_stage(sqlite_session, job_id=job.id, stage=JobStage.VERIFYING, metrics={"a": 1})
    jobs.succeed(sqlite_session, job=job, result_version_id=None, metrics={"b": 2})
    assert job.metrics == {"a": 1, "b": 2} and job.progress == 1.0
    assert jobs.enter_stage(sqlite_session, job_id=job.id, stage=JobStage.TRAINING) is None
    assert seen == [
        (job.id, "running", "queued", "claimed"),
        (job.id, "running", "verifying", "stage"),
        (job.id, "succeeded", "done", "succeeded"),
    ]


def test_a_fallback_is_recorded_on_the_job(sqlite_session, model_id, client_id, seen):
    job = jobs.create_train_job(
        sqlite_session, model_id=model_id, client_id=client_id, max_attempts=3
    )
    jobs.claim(sqlite_session, job_id=job.id, worker="w1", lease=LEASE)
    jobs.fall_back(sqlite_session, job_id=job.id, reason="gate failed", figures={"auc": 0.7})
    assert job.stage == JobStage.RETRAINING
    assert job.metrics["fallback_reason"] == "gate failed"
    assert job.metrics["approximate_attempt"] == {"auc": 0.7}
    jobs.fail(sqlite_session, job=job, reason="out of memory")
    assert [change for *_, change in seen] == ["claimed", "fallback", "failed"]
    assert seen[-1][1:3] == ("failed", "retraining") and job.error == "out of memory"


def test_jobs_are_visible_to_their_owner_and_admins(sqlite_session, model_id, api_client):
    from app.core.auth import create_client

    job = jobs.create_train_job(
        sqlite_session, model_id=model_id, client_id=api_client.id, max_attempts=3
    )
    assert jobs.get_job(sqlite_session, client=api_client, job_id=job.id) is job
    admin = create_client(sqlite_session, name="admin", scopes=["admin"]).client
    assert jobs.get_job(sqlite_session, client=admin, job_id=job.id) is job
    other = create_client(sqlite_session, name="other", scopes=["models:write"]).client
    with pytest.raises(NotFound):
        jobs.get_job(sqlite_session, client=other, job_id=job.id)
