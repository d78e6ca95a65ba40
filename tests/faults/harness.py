"""What the fault cases share: seeing the database as it is (plain SQL on connections of the
test's own), stopping the worker at a known point, cutting the database or flushing the broker,
and preparing a small trained model to erase from.

A worker is stopped at a known point by a lock, never by timing: the test holds a lock that the
worker's next statement needs (a row of the job, the model or the person's records, the audit
chain's lock, or the records table while verification reads it), waits until Postgres reports
the worker's backend blocked by the test's connection (`pg_blocking_pids`), and only then
injects the fault. A kill therefore lands inside that statement's transaction, every time.
`Breakpoint` steps the worker from one write of its job's row to the next.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import redis
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from app.audit.service import _CHAIN_LOCK_KEY
from tests.conftest import PG_ADMIN_URL, REDIS_TEST_URL, TEST_DB_NAME, TEST_DB_URL
from tests.pipeline.helpers import create_model, person_id, register_dataset
from workers.engine.data import Dataset, RecordArrays, digits
from workers.engine.partition import assign_buckets

_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="fault-hold")


def wait_until(predicate: Callable[[], Any], *, timeout: float, what: str, every: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout} s")


class Db:
    """Plain SQL on the suite's database, each statement in its own transaction."""

    def __init__(self) -> None:
        self.engine = create_engine(TEST_DB_URL, pool_pre_ping=True, isolation_level="AUTOCOMMIT")

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(text(sql), params))

    def one(self, sql: str, **params: Any) -> Any:
        rows = self.rows(sql, **params)
        return rows[0] if rows else None

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def job(self, job_id: uuid.UUID) -> Any:
        return self.one(
            "SELECT status, stage, attempts, progress, worker FROM jobs WHERE id = :j", j=job_id
        )

    def request_status(self, request_id: uuid.UUID) -> str:
        return str(self.scalar("SELECT status FROM erasure_requests WHERE id = :r", r=request_id))

    def job_of(self, request_id: uuid.UUID, *, attempt: int = 1) -> uuid.UUID | None:
        return self.scalar(
            "SELECT job_id FROM job_requests WHERE request_id = :r AND attempt = :a",
            r=request_id,
            a=attempt,
        )

    def dispose(self) -> None:
        self.engine.dispose()


class Hold:
    """A transaction of the test's own that holds row locks until released."""

    def __init__(self, db: Db) -> None:
        self.db = db
        self.conn: Connection = create_engine(TEST_DB_URL, poolclass=NullPool).connect()
        self.pid = int(self.conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
        self.conn.commit()

    def lock(self, sql: str, **params: Any) -> None:
        """Run a `SELECT ... FOR ...` in the open transaction (it may wait for another)."""
        self.conn.execute(text(sql), params)

    def lock_later(self, sql: str, **params: Any) -> Future[None]:
        """The same, from a thread, for a lock that is taken only once its holder lets go."""
        return _pool.submit(self.lock, sql, **params)

    def blocked(self) -> list[int]:
        """The backends waiting for a lock this transaction holds."""
        return [
            int(pid)
            for (pid,) in self.db.rows(
                "SELECT pid FROM pg_stat_activity WHERE :me = ANY(pg_blocking_pids(pid))",
                me=self.pid,
            )
        ]

    # Generous: on a loaded machine a worker can spend a minute between two statements (a
    # training epoch between heartbeats); the timeout only bounds how long a failure takes.
    def wait_blocked(self, *, timeout: float = 180, what: str = "a worker blocked") -> list[int]:
        return wait_until(self.blocked, timeout=timeout, what=what)

    def release(self) -> None:
        self.conn.rollback()

    def close(self) -> None:
        # A connection cut by a database outage has nothing left to give back.
        with suppress(DBAPIError):
            self.conn.close()


JOB_ROW = "SELECT id FROM jobs WHERE id = :j FOR NO KEY UPDATE"
_SET = re.compile(r"^UPDATE jobs SET (.*?) WHERE ", re.DOTALL)


def updated_columns(statement: str) -> set[str]:
    """The columns an `UPDATE jobs` statement sets (empty for any other statement)."""
    match = _SET.match(statement.strip())
    if match is None:
        return set()
    return {part.split("=", 1)[0].strip() for part in match.group(1).split(",") if "=" in part}


def is_heartbeat(statement: str) -> bool:
    columns = updated_columns(statement)
    return "heartbeat_at" in columns and columns <= {"heartbeat_at", "lease_expires_at", "progress"}


def is_stage_change(statement: str) -> bool:
    columns = updated_columns(statement)
    return "stage" in columns and "status" not in columns


class Breakpoint:
    """Stops the worker at its next write of one job's row (claiming it, a stage, a heartbeat,
    a shard done, its end): the test holds the row, and the worker's statement waits for it.
    `step` lets that statement through and stops the worker at the following one."""

    def __init__(self, db: Db, job_id: uuid.UUID) -> None:
        self.db = db
        self.job_id = job_id
        self.hold = Hold(db)
        self.hold.lock(JOB_ROW, j=job_id)

    def wait(self) -> str:
        """The statement the worker is stopped at."""
        [pid] = self.hold.wait_blocked(what="the worker at the job's row")
        return str(self.db.scalar("SELECT query FROM pg_stat_activity WHERE pid = :p", p=pid))

    def step(self) -> str:
        following = Hold(self.db)
        taken = following.lock_later(JOB_ROW, j=self.job_id)
        wait_until(
            lambda: (
                self.db.scalar(
                    "SELECT wait_event_type FROM pg_stat_activity WHERE pid = :p", p=following.pid
                )
                == "Lock"
            ),
            timeout=30,
            what="the test queued for the job's row behind the worker",
        )
        self.hold.release()
        self.hold.close()
        taken.result(timeout=60)
        self.hold = following
        return self.wait()

    def run_to(self, stop: Callable[[str], bool], *, steps: int = 40) -> str:
        """Step until the worker is stopped at a statement that `stop` accepts."""
        statement = self.wait()
        for _ in range(steps):
            if stop(statement):
                return statement
            statement = self.step()
        raise AssertionError(f"the worker never reached the statement; last: {statement}")

    def release(self) -> None:
        self.hold.release()
        self.hold.close()


class ChainHold(Hold):
    """The audit chain's lock (taken by every transaction that writes an audit event, just
    before it commits), held on a session of the test's own."""

    def acquire(self) -> None:
        self.conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _CHAIN_LOCK_KEY})
        self.conn.commit()

    def let_one_through(self) -> Future[None]:
        """Hand the lock to the transaction waiting for it, queueing up again behind it in the
        same statement: the future is done once that transaction has committed, and from then
        on the chain is held again, so the next transaction that writes an event waits."""

        def relay() -> None:
            self.conn.execute(
                text("SELECT pg_advisory_unlock(:k), pg_advisory_lock(:k)"), {"k": _CHAIN_LOCK_KEY}
            )
            self.conn.commit()

        return _pool.submit(relay)

    def release(self) -> None:
        self.conn.execute(text("SELECT pg_advisory_unlock_all()"))
        self.conn.commit()


@contextmanager
def database_down(*, keep: list[int] = ()) -> Iterator[None]:  # type: ignore[assignment]
    """The suite's database refuses connections and every connection to it is cut (but the
    backends in `keep`), until the block ends."""
    admin = create_engine(
        f"{PG_ADMIN_URL}/postgres", isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    try:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{TEST_DB_NAME}" ALLOW_CONNECTIONS false'))
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :db AND NOT (pid = ANY(:keep))"
                ),
                {"db": TEST_DB_NAME, "keep": list(keep)},
            )
        yield
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{TEST_DB_NAME}" ALLOW_CONNECTIONS true'))
        admin.dispose()


def flush_broker() -> int:
    """Delete every Redis key of this test run (queues, unacknowledged messages, bindings,
    results), as a Redis FLUSHALL would, without touching anyone else's keys."""
    client = redis.Redis.from_url(REDIS_TEST_URL)
    prefix = os.environ["LETHE_BROKER_KEY_PREFIX"]
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
    return len(keys)


# --- a small trained model and the person to erase from it ---------------------------------


@lru_cache
def digits_subset() -> Dataset:
    """The digits, grouped into people, with small holdout and test splits."""
    data = digits(seed=0)
    return dataclasses.replace(
        data,
        holdout=data.holdout.subset(np.arange(20)),
        test=data.test.subset(np.arange(40)),
    )


@dataclass
class Case:
    """A trained model to erase one person from, and what erasing them must remove."""

    model_id: uuid.UUID
    strategy: str
    dataset_id: uuid.UUID
    identity: str  # the person's raw identity value, never stored by Lethe
    subject_id: uuid.UUID
    record_ids: set[int]  # every record of the person (all splits)
    # Before the erasure (`snapshot`):
    versions_before: dict[int, str] = field(default_factory=dict)  # number -> status
    tainted_files: set[str] = field(default_factory=set)  # relative to the artifact store
    expected_purge: dict[str, object] = field(default_factory=dict)

    def body(self, **extra: Any) -> dict[str, Any]:
        return {"identities": [{"type": "user_id", "value": self.identity}], **extra}


def prepare(api, headers, db: Db, *, strategy: str, train_records: int = 120) -> Case:
    """A dataset of a couple of hundred synthetic records (digits, grouped into people) and a
    model trained on it: SISA with 2 shards x 2 slices and one epoch per slice, or a retrain
    with two epochs (so that a retrain can be stopped between them). The person to erase is
    the one with the most training records (on SISA, one with records in both shards)."""
    reg = register_dataset(api, headers, data=digits_subset(), limit=train_records)
    fields: dict[str, Any] = {"strategy": strategy, "epochs": 2}
    if strategy == "sisa":
        fields |= {"shards": 2, "slices": 2, "epochs": 1}
    model = create_model(api, headers, reg.dataset_id, **fields)
    response = api.post(f"/v1/models/{model['id']}/train", headers=headers)
    assert response.status_code == 202, response.text
    training = uuid.UUID(response.json()["id"])
    wait_until(
        lambda: db.job(training).status in ("succeeded", "failed"),
        timeout=120,
        what="training",
        every=0.05,
    )
    assert db.job(training).status == "succeeded"
    person = _person(db, reg.dataset_id, reg.splits["train"], sisa=strategy == "sisa")
    keys = [
        f"{split}-{int(rid)}"
        for split, arrays in reg.splits.items()
        for rid, subject in zip(arrays.record_ids, arrays.subject_ids, strict=True)
        if subject == person
    ]
    rows = db.rows(
        "SELECT id, subject_id FROM training_records WHERE dataset_id = :d AND key = ANY(:k)",
        d=reg.dataset_id,
        k=keys,
    )
    assert len(rows) == len(keys) and len({r.subject_id for r in rows}) == 1
    case = Case(
        model_id=uuid.UUID(model["id"]),
        strategy=strategy,
        dataset_id=uuid.UUID(reg.dataset_id),
        identity=person_id(reg.prefix, person),
        subject_id=rows[0].subject_id,
        record_ids={int(r.id) for r in rows},
    )
    return snapshot(db, case)


def snapshot(db: Db, case: Case) -> Case:
    """What the model holds of the person before the erasure: its versions, and the files
    that hold their records (what the erasure must purge, counted as the certificate counts)."""
    from tests.faults.checks import files_holding

    case.versions_before = {
        int(v.number): str(v.status)
        for v in db.rows(
            "SELECT number, status FROM model_versions WHERE model_id = :m", m=case.model_id
        )
    }
    case.tainted_files = files_holding(case.record_ids, model_id=case.model_id)
    case.expected_purge = {
        "checkpoints": sum(f.endswith(".json") and "/sisa/" in f for f in case.tainted_files),
        "artifacts": sum("/sisa/" not in f for f in case.tainted_files),
        "references": 0,  # SISA and retrain models have no reference models
        # Each file is one stored version in the local directory.
        "object_versions": {"local": len(case.tainted_files)},
    }
    assert case.versions_before and case.tainted_files, "the model holds the person's records"
    return case


def _person(db: Db, dataset_id: str, train: RecordArrays, *, sisa: bool) -> int:
    """The person with the most training records; on a SISA model (2 shards, by record) one
    whose records fall in both shards, so that erasing them fans out to two shard tasks."""
    ids = {
        key: int(rid)
        for key, rid in db.rows(
            "SELECT key, id FROM training_records WHERE dataset_id = :d AND split = 'train'",
            d=dataset_id,
        )
    }
    subjects, counts = np.unique(train.subject_ids, return_counts=True)
    for subject in subjects[np.argsort(-counts, kind="stable")]:
        mine = [ids[f"train-{int(r)}"] for r in train.record_ids[train.subject_ids == subject]]
        shards = assign_buckets(
            values=np.asarray(mine, dtype=np.int64), seed=0, buckets=2, purpose="shard"
        )
        if not sisa or len(set(shards.tolist())) == 2:
            return int(subject)
    raise AssertionError("no person has records in both shards")


def submit(api, headers, case: Case, **extra_headers: str) -> uuid.UUID:
    response = api.post(
        "/v1/erasure-requests", json=case.body(), headers={**headers, **extra_headers}
    )
    assert response.status_code == 202, response.text
    return uuid.UUID(response.json()["id"])


@dataclass
class Fault:
    """One case's fault: the API, the database, the worker to kill and the case's model."""

    api: object
    headers: dict[str, str]
    db: Db
    workers: Any  # tests.faults.workers.Workers
    tally: Any
    case: Case

    def kill(self, what: str) -> None:
        """SIGKILL the worker where it stands, and start a fresh one (ready in a moment)."""
        self.workers.kill()
        self.tally.faults.append(what)
        self.workers.start(wait=False)

    def job(self, request_id: uuid.UUID, attempt: int = 1) -> uuid.UUID:
        job_id: uuid.UUID = wait_until(
            lambda: self.db.job_of(request_id, attempt=attempt), timeout=30, what="the plan"
        )
        return job_id

    def hold_model(self) -> Hold:
        """Lock the model's row: activating a version updates it, so the worker stops inside
        the activation's transaction, before it commits."""
        hold = Hold(self.db)
        hold.lock("SELECT id FROM ml_models WHERE id = :m FOR NO KEY UPDATE", m=self.case.model_id)
        return hold

    def hold_records(self) -> Hold:
        """Lock the person's records: planning claims them, so the planner stops there."""
        hold = Hold(self.db)
        hold.lock(
            "SELECT id FROM training_records WHERE id = ANY(:ids) FOR NO KEY UPDATE",
            ids=sorted(self.case.record_ids),
        )
        return hold
