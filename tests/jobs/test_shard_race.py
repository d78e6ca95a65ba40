"""Two shards of one job finishing at the same moment on two workers: exactly the later one
sees every shard done and rings `finish`, so the job never waits for the reconciler."""

from __future__ import annotations

import threading
import time

from sqlalchemy.orm import Session

from app.core.auth import create_client
from app.core.db import get_engine
from app.jobs.enums import JobKind, JobStatus
from app.jobs.models import Job, JobShard
from app.jobs.shards import finish_shard
from app.lineage.service import create_dataset
from app.registry.models import MlModel


def _job_with_two_shards(database) -> Job:
    with Session(get_engine(), expire_on_commit=False) as session:
        client = create_client(session, name="shard-race", scopes=["models:write"]).client
        dataset = create_dataset(session, client=client, name="d", description=None)
        model = MlModel(
            client_id=client.id,
            dataset_id=dataset.id,
            name="m",
            architecture="mlp",
            strategy="sisa",
        )
        session.add(model)
        session.flush()
        job = Job(
            kind=JobKind.UNLEARN, model_id=model.id, client_id=client.id, status=JobStatus.RUNNING
        )
        session.add(job)
        session.flush()
        session.add_all([JobShard(job_id=job.id, shard=s, from_slice=0) for s in (0, 1)])
        session.commit()
        return job


def test_the_last_of_two_concurrent_shards_sees_all_done(database):
    job = _job_with_two_shards(database)
    state = {"shard": 0, "slice_keys": [], "records": 1}
    first = Session(get_engine())
    assert finish_shard(first, job_id=job.id, shard=0, state=state, seconds=1.0) is False
    answers: dict[str, bool] = {}

    def second() -> None:
        with Session(get_engine()) as other:
            answers["second"] = finish_shard(
                other, job_id=job.id, shard=1, state=state | {"shard": 1}, seconds=1.0
            )
            other.commit()

    thread = threading.Thread(target=second)
    thread.start()
    time.sleep(0.5)  # the second shard's transaction reaches its check before the first commits
    first.commit()
    first.close()
    thread.join(timeout=30)
    assert answers["second"] is True
