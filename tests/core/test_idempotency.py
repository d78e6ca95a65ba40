"""An Idempotency-Key left in flight by a failed or dead request does not block its retry.

On SQLite a claim has a lease; on Postgres the key's advisory lock tells at once that no live
request holds it. A request whose claim was taken over never commits its work.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from app.audit.service import _CHAIN_LOCK_KEY
from app.core.idempotency import IN_FLIGHT, _claim, run_idempotent
from app.lineage.models import Dataset
from app.lineage.service import create_dataset
from tests.conftest import PG_ADMIN_URL, REDIS_TEST_URL, REPO_ROOT, wait_for
from tests.test_embedded import _free_port

TTL = timedelta(hours=24)
LEASE = timedelta(seconds=60)


def _datasets(session: Session, name: str) -> int:
    count = session.scalar(select(func.count()).select_from(Dataset).where(Dataset.name == name))
    session.rollback()
    return int(count or 0)


def _create(session: Session, client, name: str):
    def work() -> tuple[int, dict]:
        dataset = create_dataset(session, client=client, name=name, description=None)
        return 201, {"id": str(dataset.id), "name": name}

    return work


def _run(session: Session, client, key: str, name: str) -> tuple[int, dict]:
    return run_idempotent(
        session,
        client_id=client.id,
        key=key,
        fingerprint="f" * 64,
        ttl=TTL,
        lease=LEASE,
        work=_create(session, client, name),
    )


def _age_lease(session: Session, key: str) -> None:
    with Session(bind=session.get_bind()) as other:
        other.execute(
            text("UPDATE idempotency_keys SET lease_expires_at = :past WHERE key = :k"),
            {"past": "2000-01-01 00:00:00.000000", "k": key},
        )
        other.commit()


def test_a_claim_left_by_a_dead_request_is_taken_over_after_its_lease(sqlite_session, api_client):
    key, name = f"dead-{uuid.uuid4()}", f"ds-{uuid.uuid4()}"
    sqlite_session.commit()
    # What a process that died right after claiming leaves behind: the claim, nothing else.
    _claim(
        sqlite_session,
        client_id=api_client.id,
        key=key,
        fingerprint="f" * 64,
        ttl=TTL,
        lease=LEASE,
        owner_free=False,
    )
    with pytest.raises(Exception) as refused:
        _run(sqlite_session, api_client, key, name)
    assert refused.value.status == 409
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 60
    assert _datasets(sqlite_session, name) == 0

    _age_lease(sqlite_session, key)
    status, body = _run(sqlite_session, api_client, key, name)
    assert status == 201
    assert _run(sqlite_session, api_client, key, name) == (201, body)
    assert _datasets(sqlite_session, name) == 1


def test_a_request_whose_claim_was_taken_over_commits_nothing(sqlite_session, api_client):
    key, name = f"slow-{uuid.uuid4()}", f"ds-{uuid.uuid4()}"
    sqlite_session.commit()
    second: dict[str, tuple[int, dict]] = {}

    def slow_work() -> tuple[int, dict]:
        # While this request is slow, its lease runs out and a retry takes the key over.
        _age_lease(sqlite_session, key)
        with Session(bind=sqlite_session.get_bind(), expire_on_commit=False) as retry_session:
            second["answer"] = _run(retry_session, api_client, key, name)
        return _create(sqlite_session, api_client, name)()

    with pytest.raises(Exception) as superseded:
        run_idempotent(
            sqlite_session,
            client_id=api_client.id,
            key=key,
            fingerprint="f" * 64,
            ttl=TTL,
            lease=LEASE,
            work=slow_work,
        )
    assert superseded.value.status == 409
    assert second["answer"][0] == 201
    assert _datasets(sqlite_session, name) == 1
    assert _run(sqlite_session, api_client, key, name) == second["answer"]


# --- Postgres: a database outage in the middle of a request, against a real API process. ---


@pytest.fixture
def api_process(fresh_pg_database, tmp_path):
    """`uvicorn` on an empty, migrated database of its own, and an admin key for it."""
    from app.core.auth import create_client
    from app.core.migrate import upgrade

    url = fresh_pg_database()
    upgrade(url)
    engine = create_engine(url)
    with Session(engine) as session:
        key = create_client(session, name="outage", scopes=["admin"]).key
        session.commit()
    engine.dispose()
    port = _free_port()
    prefix = f"{os.environ['LETHE_BROKER_KEY_PREFIX']}outage-{uuid.uuid4().hex[:6]}:"
    env = os.environ | {
        "LETHE_DATABASE_URL": url,
        "LETHE_BROKER_KEY_PREFIX": prefix,
        "LETHE_VAR_DIR": str(tmp_path),
    }
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory"),
            *("--port", str(port), "--no-access-log"),
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "api.log").open("wb"),
    )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, timeout=60, every=0.2)
        yield base, {"Authorization": f"Bearer {key}"}, url, tmp_path / "api.log"
    finally:
        process.terminate()
        process.wait(timeout=20)
        import redis

        client = redis.Redis.from_url(REDIS_TEST_URL)
        stale = list(client.scan_iter(match=f"{prefix}*"))
        if stale:
            client.delete(*stale)


def test_a_retry_after_a_database_outage_mid_request_succeeds(api_process):
    base, headers, url, log_path = api_process
    database = url.rsplit("/", 1)[1]
    headers = headers | {"Idempotency-Key": "portal-outage-1"}
    body = {"identities": [{"type": "email", "value": "outage@example.com"}], "reference": "D-1"}
    admin = create_engine(f"{PG_ADMIN_URL}/postgres", isolation_level="AUTOCOMMIT")
    locker = create_engine(url, isolation_level="AUTOCOMMIT").connect()

    def in_flight() -> bool:
        state = locker.scalar(
            text("SELECT state FROM idempotency_keys WHERE key = 'portal-outage-1'")
        )
        return state == IN_FLIGHT

    # Hold the audit chain so the request stays inside its work, after claiming its key.
    locker.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _CHAIN_LOCK_KEY})
    first: dict[str, httpx.Response] = {}
    thread = threading.Thread(
        target=lambda: first.update(
            answer=httpx.post(f"{base}/v1/erasure-requests", json=body, headers=headers, timeout=60)
        )
    )
    try:
        thread.start()
        wait_for(in_flight, timeout=30)
        # The database goes away: no new connections, and the API's connections are cut.
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false'))
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :db AND pid <> :me"
                ),
                {"db": database, "me": locker.scalar(text("SELECT pg_backend_pid()"))},
            )
        thread.join(timeout=60)
        assert first["answer"].status_code == 503  # a problem that says when to retry
        assert in_flight(), "releasing the key failed too, as it did in production"
        assert b"idempotency_release_failed" in log_path.read_bytes()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true'))
        locker.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _CHAIN_LOCK_KEY})

    # The database is back: the portal's retry with the same key succeeds at once.
    retry = httpx.post(f"{base}/v1/erasure-requests", json=body, headers=headers, timeout=60)
    assert retry.status_code == 202, retry.text
    replay = httpx.post(f"{base}/v1/erasure-requests", json=body, headers=headers, timeout=60)
    assert replay.status_code == 202 and replay.json() == retry.json()
    assert locker.scalar(text("SELECT count(*) FROM erasure_requests")) == 1
    assert locker.scalar(text("SELECT state FROM idempotency_keys")) == "done"
    locker.close()
    admin.dispose()
