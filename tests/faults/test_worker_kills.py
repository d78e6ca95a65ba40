"""SIGKILL of the worker at each stage of an erasure, on a SISA model and on a model that
retrains from scratch: planning, claiming the job, retraining (a SISA shard task, a retrain),
verifying, activating, and right after activation before the purge sweep confirms. Each case
stops the worker at that point with a lock, kills it there, starts a fresh worker, and checks
the one end state (`tests.faults.checks`)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest

from tests.faults.checks import assert_erased
from tests.faults.harness import (
    Breakpoint,
    ChainHold,
    Fault,
    Hold,
    is_heartbeat,
    is_stage_change,
    prepare,
    submit,
    wait_until,
)


def kill_while_planning(f: Fault) -> uuid.UUID:
    """Stopped claiming the person's records: the plan's transaction is open, the request
    still `received`. Its message is gone with the worker; the reconciler plans it again."""
    records = f.hold_records()
    request_id = submit(f.api, f.headers, f.case)
    records.wait_blocked(what="the planner waiting for the records")
    assert f.db.request_status(request_id) == "received"  # planning is under way, uncommitted
    f.kill("worker killed while planning")
    records.release()
    records.close()
    return request_id


def kill_while_claiming(f: Fault) -> uuid.UUID:
    """Stopped claiming the planned job (claiming moves the request on, under its row lock):
    the job is still `pending`, and the reconciler starts it again."""
    # The planner stops at the records holding the request's row; the test queues up for that
    # row and lets planning finish, so it holds the row when the worker claims the job.
    records = f.hold_records()
    request_id = submit(f.api, f.headers, f.case)
    records.wait_blocked(what="the planner waiting for the records")
    row = Hold(f.db)
    taken = row.lock_later(
        "SELECT id FROM erasure_requests WHERE id = :r FOR NO KEY UPDATE", r=request_id
    )
    waiting = "SELECT wait_event_type FROM pg_stat_activity WHERE pid = :p"
    wait_until(
        lambda: f.db.scalar(waiting, p=row.pid) == "Lock",
        timeout=30,
        what="the test waiting for the request's row",
    )
    records.release()
    taken.result(timeout=30)
    records.close()
    row.wait_blocked(what="the worker claiming the job")
    job_id = f.db.job_of(request_id)
    assert job_id is not None and f.db.job(job_id).status == "pending"  # the claim is uncommitted
    f.kill("worker killed while claiming the job")
    row.release()
    row.close()
    return request_id


def kill_while_retraining(f: Fault) -> uuid.UUID:
    """Stopped at a heartbeat in the middle of training: a SISA shard task after its first
    epoch, or a retrain between its two epochs. The lease runs out and the job runs again."""
    request_id = submit(f.api, f.headers, f.case)
    stop = Breakpoint(f.db, f.job(request_id))
    stop.run_to(is_heartbeat)
    if f.case.strategy == "retrain":
        # That was the retrain's first heartbeat, before its first epoch. Heartbeats come at
        # most once a second, counted from that one: held past that, the next comes after
        # the first epoch, with one still to train.
        time.sleep(1.1)
        assert is_heartbeat(stop.step())
    job = f.db.job(stop.job_id)
    assert (job.status, job.stage) == ("running", "retraining")
    task = "a SISA shard task" if f.case.strategy == "sisa" else "a retrain"
    f.kill(f"worker killed during {task}")
    stop.release()
    return request_id


def kill_while_verifying(f: Fault) -> uuid.UUID:
    """Stopped reading the records it verifies against (SISA: the erased ones, to check that no
    manifest of the new version lists them; retrain: the test split, for its accuracy), after
    the job entered `verifying` and before anything is activated."""
    request_id = submit(f.api, f.headers, f.case)
    stop = Breakpoint(f.db, f.job(request_id))
    stop.run_to(lambda q: is_stage_change(q) and f.db.job(stop.job_id).stage == "retraining")
    records = Hold(f.db)
    records.lock("LOCK TABLE training_records IN ACCESS EXCLUSIVE MODE")
    stop.release()
    records.wait_blocked(what="the verification reading the records")
    job = f.db.job(stop.job_id)
    assert (job.status, job.stage) == ("running", "verifying")
    f.kill(f"worker killed while verifying ({f.case.strategy})")
    records.release()
    records.close()
    return request_id


def kill_while_activating(f: Fault) -> uuid.UUID:
    """Stopped inside the activation's transaction (the new version inserted, the model not
    yet pointing at it): nothing of it commits, and the job runs again."""
    model = f.hold_model()
    request_id = submit(f.api, f.headers, f.case)
    model.wait_blocked(what="the activation waiting for the model's row")
    job_id = f.db.job_of(request_id)
    assert job_id is not None
    job = f.db.job(job_id)
    assert (job.status, job.stage) == ("running", "verifying")
    f.kill(f"worker killed while activating ({f.case.strategy})")
    model.release()
    model.close()
    return request_id


def kill_after_activation(f: Fault) -> uuid.UUID:
    """The activation commits; the worker's next transaction that writes an audit event (the
    purge sweep confirming its deletions) waits for the chain, and the worker dies there."""
    model = f.hold_model()
    request_id = submit(f.api, f.headers, f.case)
    model.wait_blocked(what="the activation waiting for the model's row")
    chain = ChainHold(f.db)
    chain.acquire()
    model.release()
    model.close()
    chain.wait_blocked(what="the activation waiting to write its events")
    chain.let_one_through().result(timeout=30)
    job_id = f.db.job_of(request_id)
    assert job_id is not None and f.db.job(job_id).status == "succeeded"
    chain.wait_blocked(what="the worker's next audit write")
    unconfirmed = f.db.scalar(
        "SELECT count(*) FROM purge_items WHERE job_id = :j AND confirmed_at IS NULL", j=job_id
    )
    assert unconfirmed > 0, "the purge was confirmed before the kill"
    f.kill(f"worker killed after activation, before the purge is confirmed ({f.case.strategy})")
    chain.release()
    chain.close()
    return request_id


# name: (injection, strategy, runs of the unlearning job)
SCENARIOS: dict[str, tuple[Callable[[Fault], uuid.UUID], str, int]] = {
    "planning": (kill_while_planning, "sisa", 1),
    "claiming": (kill_while_claiming, "sisa", 1),
    "sisa-shard-retrain": (kill_while_retraining, "sisa", 2),
    "retrain": (kill_while_retraining, "retrain", 2),
    "sisa-verifying": (kill_while_verifying, "sisa", 2),
    "retrain-verifying": (kill_while_verifying, "retrain", 2),
    "sisa-activating": (kill_while_activating, "sisa", 2),
    "retrain-activating": (kill_while_activating, "retrain", 2),
    "sisa-after-activation": (kill_after_activation, "sisa", 1),
    "retrain-after-activation": (kill_after_activation, "retrain", 1),
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_worker_killed(scenario, api, headers, db, workers, tally):
    inject, strategy, runs = SCENARIOS[scenario]
    case = prepare(api, headers, db, strategy=strategy)
    request_id = inject(Fault(api, headers, db, workers, tally, case))
    claims = assert_erased(api, headers, db, case, request_id, tally=tally, log=workers.log_path)
    [model] = claims["models"]
    job = db.job(uuid.UUID(model["job_id"]))
    assert (job.status, job.attempts) == ("succeeded", runs)


def test_worker_killed_on_every_run_then_retried(api, headers, admin_headers, db, workers, tally):
    """Killed in the retrain on each of its job's 3 runs, the job fails with its reason and
    the request fails, the previous version still active. An admin's retry plans a new
    attempt, whose job alone decides: the request completes, with one new version."""
    case = prepare(api, headers, db, strategy="retrain")
    f = Fault(api, headers, db, workers, tally, case)
    request_id = submit(api, headers, case)
    job_id = f.job(request_id)

    def running(run: int) -> bool:
        job = db.job(job_id)
        return (job.status, job.attempts) == ("running", run)

    def in_the_retrain(statement: str) -> bool:  # a heartbeat, or its end (entering `verifying`)
        return is_heartbeat(statement) or (
            is_stage_change(statement) and db.job(job_id).stage == "retraining"
        )

    for run in (1, 2, 3):
        if run > 1:  # the reconciler runs it again once the killed run's lease has run out
            wait_until(lambda run=run: running(run), timeout=60, what=f"run {run}", every=0.005)
        stop = Breakpoint(db, job_id)
        stop.run_to(in_the_retrain)
        assert db.job(job_id).status == "running"
        f.kill(f"worker killed during a retrain (run {run} of 3)")
        stop.release()
    wait_until(
        lambda: db.request_status(request_id) == "failed", timeout=60, what="the request failed"
    )
    job = db.job(job_id)
    assert (job.status, job.attempts) == ("failed", 3)
    assert db.scalar(
        "SELECT number FROM model_versions WHERE model_id = :m AND status = 'active'",
        m=case.model_id,
    ) == max(case.versions_before)

    retried = api.post(f"/v1/erasure-requests/{request_id}/retry", headers=admin_headers)
    assert retried.status_code == 200, retried.text
    claims = assert_erased(api, headers, db, case, request_id, tally=tally, log=workers.log_path)
    [model] = claims["models"]
    assert model["job_id"] != str(job_id)
    assert db.job(uuid.UUID(model["job_id"])).attempts == 1
