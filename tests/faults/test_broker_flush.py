"""The broker loses everything: every Redis key of this test run (queues, unacknowledged
messages, bindings, results) is deleted while a request is in flight, as by a FLUSHALL. The
broker is only a doorbell: the reconciler finds the rows that wait and rings again."""

from __future__ import annotations

import os
import time
import uuid

import redis

from tests.conftest import REDIS_TEST_URL
from tests.faults.checks import assert_erased
from tests.faults.harness import (
    Breakpoint,
    ChainHold,
    Fault,
    flush_broker,
    is_heartbeat,
    prepare,
    submit,
)

# A consuming worker asks Redis for a message and waits up to this long (kombu's BRPOP); a
# message pushed meanwhile goes straight to it, beyond the reach of a flush.
BRPOP_SECONDS = 1.0


def _queued(task: str) -> int:
    """Messages for `task` waiting in this run's queues."""
    client = redis.Redis.from_url(REDIS_TEST_URL)
    prefix = os.environ["LETHE_BROKER_KEY_PREFIX"]
    try:
        return sum(
            task.encode() in message
            for queue in ("cpu", "gpu")
            for message in client.lrange(f"{prefix}{queue}", 0, -1)
        )
    finally:
        client.close()


def _flush(f: Fault, what: str) -> None:
    assert flush_broker() > 0
    f.tally.faults.append(what)


def test_flush_loses_the_planning_message(api, headers, db, workers, tally):
    """The request's planning message is deleted before any worker takes it: the reconciler
    plans the request again once it has waited too long (2 s here, 60 s by default)."""
    case = prepare(api, headers, db, strategy="sisa")
    f = Fault(api, headers, db, workers, tally, case)
    workers.pause()  # SIGSTOP: the message stays in Redis, where the flush reaches it
    try:
        time.sleep(BRPOP_SECONDS * 1.5)
        request_id = submit(api, headers, case)
        assert _queued("lethe.erasure.plan_request") == 1
        _flush(f, "broker flushed with the planning message queued")
    finally:
        workers.resume()
    assert_erased(api, headers, db, case, request_id, tally=tally, log=workers.log_path)


def test_flush_loses_a_shard_task(api, headers, db, workers, tally):
    """While one shard of a SISA job retrains, the other shard's message is deleted: the job's
    lease runs out with a shard not done, and its next run retrains only that shard."""
    case = prepare(api, headers, db, strategy="sisa")
    f = Fault(api, headers, db, workers, tally, case)
    request_id = submit(api, headers, case)
    stop = Breakpoint(db, f.job(request_id))
    stop.run_to(is_heartbeat)  # the first shard's, as it trains
    job_id = stop.job_id
    assert _queued("lethe.jobs.run_shard") == 1
    _flush(f, "broker flushed with a shard task queued")
    stop.release()
    claims = assert_erased(api, headers, db, case, request_id, tally=tally, log=workers.log_path)
    [model] = claims["models"]
    assert db.job(uuid.UUID(model["job_id"])).attempts == 2
    shards = db.rows("SELECT shard, attempt FROM job_shards WHERE job_id = :j", j=job_id)
    assert sorted(s.attempt for s in shards) == [1, 1]  # each shard trained once


def test_flush_during_a_retrain(api, headers, db, workers, tally):
    """The running job's unacknowledged message and every queue go; the run itself goes on
    and completes once, and the doorbells it rings afterwards reach a new queue."""
    case = prepare(api, headers, db, strategy="retrain")
    f = Fault(api, headers, db, workers, tally, case)
    request_id = submit(api, headers, case)
    stop = Breakpoint(db, f.job(request_id))
    stop.run_to(is_heartbeat)
    _flush(f, "broker flushed during a retrain")
    stop.release()
    claims = assert_erased(api, headers, db, case, request_id, tally=tally, log=workers.log_path)
    [model] = claims["models"]
    assert db.job(uuid.UUID(model["job_id"])).attempts == 1


def test_flush_right_after_activation(api, headers, db, workers, tally):
    """The new version is active and the purge is not yet confirmed when the broker is
    flushed: beat's sweep confirms it and the request completes."""
    case = prepare(api, headers, db, strategy="sisa")
    f = Fault(api, headers, db, workers, tally, case)
    model = f.hold_model()
    request_id = submit(api, headers, case)
    model.wait_blocked(what="the activation waiting for the model's row")
    chain = ChainHold(db)
    chain.acquire()
    model.release()
    model.close()
    chain.wait_blocked(what="the activation waiting to write its events")
    chain.let_one_through().result(timeout=30)
    job_id = db.job_of(request_id)
    assert job_id is not None and db.job(job_id).status == "succeeded"
    assert db.scalar(
        "SELECT count(*) FROM purge_items WHERE job_id = :j AND confirmed_at IS NULL", j=job_id
    )
    _flush(f, "broker flushed right after activation, before the purge is confirmed")
    chain.release()
    chain.close()
    assert_erased(api, headers, db, case, request_id, tally=tally, log=workers.log_path)
