"""Fixtures of the fault suite: its own real Celery workers, one alive at a time, forked from a
preloaded zygote (a fresh worker in about a second instead of tens on a busy machine), and a
tally of the faults injected and what they cost, printed at the end of the run.

The suite's shared worker (`celery_worker`), if an earlier test started it, is stopped while
these tests run and started again afterwards: the process a test kills must be the one doing
the work.

The workers plan a request again 2 s after its planning message was lost (production: 60 s)
and start unlearning jobs at once (no batching window), so that recovery is seen in seconds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.conftest import _VAR_DIR, SESSION_WORKERS
from tests.faults.harness import Db, digits_subset
from tests.faults.workers import Workers

WORKER_ENV = {"LETHE_REPLAN_AFTER_SECONDS": "2", "LETHE_BATCHING_WINDOW_SECONDS": "0"}


@dataclass
class Tally:
    """Faults injected across the package, and what the end states showed."""

    faults: list[str] = field(default_factory=list)
    requests: int = 0
    completed: int = 0
    leftovers: int = 0
    duplicate_versions: int = 0
    started: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        return (
            f"fault suite: {len(self.faults)} faults injected, "
            f"{self.requests - self.completed} lost requests (of {self.requests}), "
            f"{self.leftovers} leftover erased data, {self.duplicate_versions} duplicate versions, "
            f"{time.monotonic() - self.started:.0f} s"
        )


TALLY = Tally()


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if TALLY.faults:
        terminalreporter.write_line(TALLY.line())


@pytest.fixture(scope="package")
def db(database: str) -> Iterator[Db]:
    monitor = Db()
    yield monitor
    monitor.dispose()


@pytest.fixture(scope="package")
def headers(make_key) -> dict[str, str]:
    key = make_key(["lineage:write", "models:write", "requests:write", "requests:read"])
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="package")
def workers(request) -> Iterator[Workers]:
    TALLY.started = time.monotonic()
    paused = [w for w in SESSION_WORKERS if w.process is not None and w.process.poll() is None]
    for worker in paused:
        worker.stop()
    # The zygote loads its imports while the database is created and migrated.
    pool = Workers(var_dir=_VAR_DIR, env=os.environ | WORKER_ENV, ready=False)
    try:
        request.getfixturevalue("database")
        digits_subset()  # loads scikit-learn's digits meanwhile too
        pool.wait_zygote()
        pool.start()
        yield pool
    finally:
        pool.close()
        for worker in paused:
            worker.start()


@pytest.fixture
def tally() -> Tally:
    return TALLY
