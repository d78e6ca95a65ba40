"""Shared fixtures. Integration tests use this machine's real Postgres and Redis and a real
Celery worker process; the suite creates its own databases and drops them afterwards."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest_plugins = ["tests.fast_db"]

PG_ADMIN_URL = os.environ.get("LETHE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")
REDIS_TEST_URL = os.environ.get("LETHE_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
REPO_ROOT = Path(__file__).resolve().parent.parent

_RUN_ID = uuid.uuid4().hex[:8]
TEST_DB_NAME = f"lethe_test_{_RUN_ID}"
TEST_DB_URL = f"{PG_ADMIN_URL}/{TEST_DB_NAME}"
_VAR_DIR = Path(tempfile.mkdtemp(prefix="lethe-test-var-"))
atexit.register(shutil.rmtree, _VAR_DIR, ignore_errors=True)

# Settings are read once per process, so the test environment is fixed before any app import.
for name in [n for n in os.environ if n.startswith("LETHE_") and not n.startswith("LETHE_TEST")]:
    del os.environ[name]
os.environ.update(
    {
        "LETHE_DATABASE_URL": TEST_DB_URL,
        "LETHE_BROKER_URL": REDIS_TEST_URL,
        # Test runs may share one Redis: each run's queues and results live under its own prefix.
        "LETHE_BROKER_KEY_PREFIX": f"lethe-test-{_RUN_ID}:",
        "LETHE_IDENTITY_PEPPER": "test-pepper-not-a-secret",
        "LETHE_VAR_DIR": str(_VAR_DIR),
        "LETHE_LOG_JSON": "true",
        "LETHE_MAX_BODY_BYTES": str(8 * 1024 * 1024),
        # Short leases and a fast reconciler so crash recovery is observable in seconds.
        "LETHE_JOB_LEASE_SECONDS": "4",
        "LETHE_RECONCILE_INTERVAL_SECONDS": "1",
        "LETHE_BATCHING_WINDOW_SECONDS": "1.5",
        # Two mitigated requests make a batch: exact retrains are observable without waiting.
        "LETHE_EXACT_BATCH_SIZE": "2",
        # Webhook and callback receivers in the tests listen on loopback, which the SSRF guard
        # refuses by default; a short beat sweep makes "within one sweep" a matter of seconds.
        # Here, not in a package's conftest: a module that builds the app while it is collected
        # reads the settings before later packages' conftests run.
        "LETHE_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        "LETHE_WEBHOOK_SWEEP_SECONDS": "3",
    }
)


def _admin_engine():
    from sqlalchemy import create_engine

    return create_engine(f"{PG_ADMIN_URL}/postgres", isolation_level="AUTOCOMMIT")


def create_database(name: str) -> str:
    from sqlalchemy import text

    engine = _admin_engine()
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return f"{PG_ADMIN_URL}/{name}"


def drop_database(name: str) -> None:
    from sqlalchemy import text

    engine = _admin_engine()
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture
def fresh_pg_database() -> Iterator[Callable[[], str]]:
    """A factory of empty Postgres databases, dropped after the test."""
    created: list[str] = []

    def make() -> str:
        name = f"lethe_test_{uuid.uuid4().hex[:10]}"
        created.append(name)
        return create_database(name)

    yield make
    for name in created:
        drop_database(name)


@pytest.fixture(scope="session")
def database() -> Iterator[str]:
    """The suite's migrated Postgres database."""
    from app.core.db import get_engine
    from app.core.migrate import upgrade

    create_database(TEST_DB_NAME)
    upgrade(TEST_DB_URL)
    yield TEST_DB_URL
    get_engine().dispose()
    drop_database(TEST_DB_NAME)


@pytest.fixture
def session(database: str) -> Iterator:
    from app.core.db import get_sessionmaker

    with get_sessionmaker()() as s:
        yield s


@pytest.fixture(scope="session")
def api(database: str) -> Iterator:
    from fastapi.testclient import TestClient

    from app.main import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as client:
        yield client


def _issue_key(scopes: list[str], *, requires_approval: bool = False) -> str:
    from app.core.auth import create_client
    from app.core.db import get_sessionmaker

    with get_sessionmaker()() as s:
        issued = create_client(
            s, name=f"test-{'-'.join(scopes)}", scopes=scopes, requires_approval=requires_approval
        )
        s.commit()
        return issued.key


@pytest.fixture(scope="session")
def make_key(database: str) -> Callable[..., str]:
    return _issue_key


@pytest.fixture(scope="session")
def admin_headers(database: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {_issue_key(['admin'])}"}


@pytest.fixture(scope="session")
def portal_headers(database: str) -> dict[str, str]:
    key = _issue_key(["requests:write", "requests:read", "lineage:write"])
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def enqueued() -> Iterator[list[tuple[str, list]]]:
    """The tasks this process sends to the broker during the test (which are then not sent)."""
    from unittest import mock

    from app.core import broker

    calls: list[tuple[str, list]] = []

    def enqueue(task: str, *, args: list, **_: object) -> bool:
        calls.append((task, args))
        return True

    with mock.patch.object(broker, "enqueue", enqueue):
        yield calls


class WorkerProcess:
    """A real Celery worker (with beat) on Redis, against the suite's database."""

    def __init__(self) -> None:
        self.log_path = _VAR_DIR / "worker.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        from app.core.processes import start_child

        self.starts += 1
        with self.log_path.open("ab") as log:
            # Its own process group, and SIGTERM should pytest die without stopping it: the
            # worker and its beat never outlive the suite.
            self.process = start_child(
                [
                    *(sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker"),
                    *("-Q", "cpu,gpu", "--pool", "solo", "--loglevel", "INFO"),
                    *("-n", f"test-{_RUN_ID}-{self.starts}@%h", "--beat"),
                    *("--schedule", str(_VAR_DIR / f"beat-{self.starts}")),
                ],
                cwd=REPO_ROOT,
                env=os.environ.copy(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        marker = f"test-{_RUN_ID}-{self.starts}@".encode()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = self.log_path.read_bytes()
            if marker in text and b"ready." in text.split(marker, 1)[1]:
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        self.process.kill()
        raise RuntimeError("worker did not become ready in 60 s")

    def kill(self) -> None:
        """SIGKILL to the worker and its beat: no warm shutdown, no acknowledgements, as when
        a machine dies."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=20)

    def stop(self) -> None:
        from app.core.processes import stop_child

        if self.process is not None:
            stop_child(self.process, grace=20)


# The suite's shared worker once started: the fault suite (tests/faults) stops it while it runs
# workers of its own, so that a kill always hits the process doing the work.
SESSION_WORKERS: list[WorkerProcess] = []


@pytest.fixture(scope="session")
def celery_worker(database: str) -> Iterator[WorkerProcess]:
    import redis

    worker = WorkerProcess()
    worker.start()
    SESSION_WORKERS.append(worker)
    yield worker
    SESSION_WORKERS.remove(worker)
    worker.stop()
    client = redis.Redis.from_url(REDIS_TEST_URL)
    stale = list(client.scan_iter(match=f"{os.environ['LETHE_BROKER_KEY_PREFIX']}*"))
    if stale:
        client.delete(*stale)


def wait_for(predicate: Callable[[], object], *, timeout: float = 30, every: float = 0.1) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout} s")


def _counts(session) -> dict[str, int]:
    from sqlalchemy import func, select

    from app.models import Base

    session.rollback()
    counts = {
        table.name: session.scalar(select(func.count()).select_from(table))
        for table in Base.metadata.sorted_tables
    }
    session.rollback()
    return counts


def table_counts(session, *, quiet: float = 0.5, timeout: float = 30) -> dict[str, int]:
    """Row counts of every table, to show that a refused request changed nothing. Taken once the
    worker has been quiet for `quiet` seconds, so that earlier tests' background work (planning,
    webhooks) does not count."""
    deadline = time.monotonic() + timeout
    previous = _counts(session)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        current = _counts(session)
        if current == previous:
            return current
        previous = current
    raise AssertionError("the database did not settle; background work kept writing")
