"""The database goes away (it refuses connections, and every connection to it is cut) while a
portal submits a request, or its connections are cut under a running job. The API answers
problem documents meanwhile; a retry with the same Idempotency-Key creates the request once."""

from __future__ import annotations

import threading
import uuid

import httpx

from tests.faults.checks import assert_erased
from tests.faults.harness import (
    Breakpoint,
    ChainHold,
    Fault,
    Hold,
    database_down,
    is_heartbeat,
    prepare,
    wait_until,
)


def _problem(response: httpx.Response) -> None:
    """A problem document, not a stack trace."""
    assert response.status_code in (500, 503), response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert {"type", "title", "status", "detail"} <= set(body) and body["status"] == (
        response.status_code
    )
    for leak in ("Traceback", "sqlalchemy", "psycopg", "OperationalError", "127.0.0.1"):
        assert leak not in response.text


def _requests(db, identity_key: str) -> list[uuid.UUID]:
    return [
        r.id
        for r in db.rows(
            "SELECT e.id FROM erasure_requests e JOIN idempotency_keys k "
            "ON k.response_body ->> 'id' = CAST(e.id AS text) WHERE k.key = :k",
            k=identity_key,
        )
    ]


def test_outage_before_the_request_then_a_retry(api, headers, db, workers, tally):
    case = prepare(api, headers, db, strategy="sisa")
    key = f"portal-{uuid.uuid4()}"
    sent = {**headers, "Idempotency-Key": key}
    with database_down():
        tally.faults.append("database outage while a request is submitted")
        _problem(api.post("/v1/erasure-requests", json=case.body(), headers=sent))
        _problem(api.get("/v1/erasure-requests", headers=headers))
    retry = api.post("/v1/erasure-requests", json=case.body(), headers=sent)
    assert retry.status_code == 202, retry.text
    replay = api.post("/v1/erasure-requests", json=case.body(), headers=sent)
    assert replay.status_code == 202 and replay.json() == retry.json()
    request_id = uuid.UUID(retry.json()["id"])
    assert _requests(db, key) == [request_id]
    assert_erased(api, headers, db, case, request_id, tally=tally, log=workers.log_path)


def test_outage_mid_request_with_the_key_claimed_then_a_retry(api, headers, db, workers, tally):
    """The database goes away after the request claimed its Idempotency-Key and before its
    work committed; releasing the key fails too. The portal's retry with the same key
    succeeds once the database is back, and exactly one request exists."""
    case = prepare(api, headers, db, strategy="retrain")
    key = f"portal-{uuid.uuid4()}"
    sent = {**headers, "Idempotency-Key": key}
    # Holding the audit chain keeps the request inside its work: it writes its events last.
    chain = ChainHold(db)
    chain.acquire()
    first: dict[str, httpx.Response] = {}
    post = threading.Thread(
        target=lambda: first.update(
            answer=api.post("/v1/erasure-requests", json=case.body(), headers=sent)
        )
    )
    try:
        post.start()
        wait_until(
            lambda: (
                db.scalar("SELECT state FROM idempotency_keys WHERE key = :k", k=key) == "in_flight"
            ),
            timeout=30,
            what="the key claimed",
        )
        chain.wait_blocked(what="the request's commit waiting for the chain")
        with database_down(keep=[chain.pid]):
            tally.faults.append("database outage mid-request, Idempotency-Key claimed")
            post.join(timeout=60)
            assert not post.is_alive()
            _problem(first["answer"])
    finally:
        chain.release()
        chain.close()
    assert db.scalar("SELECT state FROM idempotency_keys WHERE key = :k", k=key) == "in_flight"
    retry = api.post("/v1/erasure-requests", json=case.body(), headers=sent)
    assert retry.status_code == 202, retry.text
    request_id = uuid.UUID(retry.json()["id"])
    assert _requests(db, key) == [request_id]
    assert_erased(api, headers, db, case, request_id, tally=tally, log=workers.log_path)


def _under_a_running_retrain(f: Fault) -> tuple[uuid.UUID, Hold, list[int]]:
    """A retrain stopped at its heartbeat (its next write of the job's row): returns the
    request, the hold, and the worker's backend that waits for it."""
    response = f.api.post("/v1/erasure-requests", json=f.case.body(), headers=f.headers)
    assert response.status_code == 202, response.text
    request_id = uuid.UUID(response.json()["id"])
    stop = Breakpoint(f.db, f.job(request_id))
    stop.run_to(is_heartbeat)
    return request_id, stop.hold, stop.hold.blocked()


def test_outage_under_a_running_job(api, headers, db, workers, tally):
    """The database goes away while a retrain runs: its heartbeat fails, and so does marking
    the job failed. The lease runs out once the database is back, and the job runs again."""
    case = prepare(api, headers, db, strategy="retrain")
    f = Fault(api, headers, db, workers, tally, case)
    request_id, row, _ = _under_a_running_retrain(f)
    mark = workers.log_path.stat().st_size
    with database_down():
        tally.faults.append("database outage under a running retrain")
        wait_until(
            lambda: b"raised unexpected" in workers.log_path.read_bytes()[mark:],
            timeout=30,
            what="the run to give up",
        )
    row.close()
    claims = assert_erased(api, headers, db, case, request_id, tally=tally, log=workers.log_path)
    [model] = claims["models"]
    assert db.job(uuid.UUID(model["job_id"])).attempts == 2


def test_connection_dropped_under_a_running_job(api, headers, db, workers, tally):
    """The worker's database connection is dropped while a retrain runs, the database itself
    still up (a failover, a pooler restart, an administrator): the run is interrupted, not
    failed, and the job runs again."""
    case = prepare(api, headers, db, strategy="retrain")
    f = Fault(api, headers, db, workers, tally, case)
    request_id, row, backends = _under_a_running_retrain(f)
    for pid in backends:
        db.scalar("SELECT pg_terminate_backend(:p)", p=pid)
    tally.faults.append("the worker's database connection dropped under a running retrain")
    row.release()
    row.close()
    claims = assert_erased(api, headers, db, case, request_id, tally=tally, log=workers.log_path)
    [model] = claims["models"]
    assert db.job(uuid.UUID(model["job_id"])).attempts == 2
