"""The erasure figures of /metrics, computed in SQL on SQLite and on Postgres."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.core.db import utcnow
from app.erasure.metrics import completion_figures, request_figures
from app.erasure.models import ErasureRequest


def _samples(metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for m in metrics for s in m.samples}


@pytest.fixture(params=["sqlite", "postgres"])
def any_session(request):
    return request.getfixturevalue("sqlite_session" if request.param == "sqlite" else "session")


def test_completion_time_and_overdue(any_session):
    from app.core.auth import create_client

    session = any_session
    client = create_client(session, name="figures", scopes=["requests:read"]).client
    before = _samples([*completion_figures(session), *request_figures(session)])
    now = utcnow()
    for received, status, completed in (
        (now - timedelta(hours=2), "completed", now),
        (now - timedelta(days=40), "running", None),
    ):
        session.add(
            ErasureRequest(
                client_id=client.id,
                status=status,
                identities=[],
                received_at=received,
                due_at=received + timedelta(days=30),
                updated_at=now,
                completed_at=completed,
            )
        )
    session.flush()
    after = _samples([*completion_figures(session), *request_figures(session)])
    session.rollback()

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after[key] - before[key]

    assert grew("lethe_erasure_completion_seconds_bucket", le="3600.0") == 0
    assert grew("lethe_erasure_completion_seconds_bucket", le="21600.0") == 1
    assert grew("lethe_erasure_completion_seconds_count") == 1
    assert 7190 < grew("lethe_erasure_completion_seconds_sum") < 7210
    assert grew("lethe_erasure_requests_overdue") == 1
    assert grew("lethe_erasure_requests", status="running") == 1
