"""Bad input: one test each. Every one gets a precise problem+json and changes nothing."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import create_engine, text

from app.audit.service import _CHAIN_LOCK_KEY
from tests.conftest import TEST_DB_URL, table_counts, wait_for

URL = "/v1/erasure-requests"
GOOD = {"identities": [{"type": "email", "value": "secret-person@example.com"}]}


@pytest.fixture
def unchanged(session):
    before = table_counts(session)
    yield
    assert table_counts(session) == before


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    assert "secret-person" not in response.text
    return body


def test_malformed_json(api, portal_headers, unchanged):
    response = api.post(
        URL,
        content=b'{"identities": [',
        headers=portal_headers | {"content-type": "application/json"},
    )
    body = _problem(response, 400)
    assert body["title"] == "Malformed JSON"


def test_unknown_field(api, portal_headers, unchanged):
    body = _problem(api.post(URL, json=GOOD | {"subject": "x"}, headers=portal_headers), 422)
    assert body["errors"] == [{"pointer": "#/subject", "detail": "Extra inputs are not permitted"}]


def test_no_identities(api, portal_headers, unchanged):
    body = _problem(api.post(URL, json={"identities": []}, headers=portal_headers), 422)
    assert body["errors"][0]["pointer"] == "#/identities"


def test_unknown_identity_type(api, portal_headers, unchanged):
    payload = {"identities": [{"type": "shoe_size", "value": "secret-person"}]}
    body = _problem(api.post(URL, json=payload, headers=portal_headers), 422)
    assert body["errors"][0]["pointer"] == "#/identities/0/type"


def test_bad_sha256_identity_is_not_echoed(api, portal_headers, unchanged):
    payload = {"identities": [{"type": "email", "value": "secret-person", "format": "sha256"}]}
    body = _problem(api.post(URL, json=payload, headers=portal_headers), 422)
    assert body["errors"][0]["pointer"] == "#/identities/0"
    assert "64 hexadecimal" in body["errors"][0]["detail"]


def test_oversize_body(api, portal_headers, unchanged):
    payload = b'{"identities": [{"type": "email", "value": "' + b"a" * (9 * 1024 * 1024) + b'"}]}'
    response = api.post(
        URL, content=payload, headers=portal_headers | {"content-type": "application/json"}
    )
    body = _problem(response, 413)
    assert body["max_bytes"] == 8 * 1024 * 1024


def test_missing_key(api, unchanged):
    response = api.post(URL, json=GOOD)
    _problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


def test_wrong_key(api, unchanged):
    _problem(api.post(URL, json=GOOD, headers={"Authorization": "Bearer lth_nope_nope"}), 401)


@pytest.fixture
def reader_headers(make_key) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_key(['requests:read'])}"}


def test_wrong_scope(api, reader_headers, unchanged):
    body = _problem(api.post(URL, json=GOOD, headers=reader_headers), 403)
    assert body["required_scope"] == "requests:write"


def test_unknown_route_and_method(api, portal_headers):
    _problem(api.get("/v1/nothing-here", headers=portal_headers), 404)
    _problem(api.put(URL, json=GOOD, headers=portal_headers), 405)


def test_malformed_request_id(api, portal_headers):
    body = _problem(api.get(f"{URL}/not-a-uuid", headers=portal_headers), 422)
    assert body["errors"][0]["parameter"] == "request_id"


def test_idempotent_replay_and_mismatch(api, portal_headers, session):
    headers = portal_headers | {"Idempotency-Key": "replay-1"}
    first = api.post(URL, json=GOOD, headers=headers)
    assert first.status_code == 202
    before = table_counts(session)
    replay = api.post(URL, json=GOOD, headers=headers)
    assert replay.status_code == 202
    assert replay.json() == first.json()
    other_body = {"identities": [{"type": "email", "value": "someone-else@example.com"}]}
    body = _problem(api.post(URL, json=other_body, headers=headers), 422)
    assert body["errors"][0]["parameter"] == "Idempotency-Key"
    assert table_counts(session) == before


def _claimed(session, key: str) -> bool:
    count = session.execute(
        text("SELECT count(*) FROM idempotency_keys WHERE key = :k"), {"k": key}
    ).scalar()
    session.rollback()
    return bool(count)


def test_idempotency_key_in_flight_is_409(api, portal_headers, session):
    """Hold the audit chain's lock so the first request stays in flight, deterministically."""
    headers = portal_headers | {"Idempotency-Key": "in-flight-1"}
    locker = create_engine(TEST_DB_URL).connect()
    locker.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _CHAIN_LOCK_KEY})
    results: dict[str, object] = {}
    first = threading.Thread(
        target=lambda: results.update(first=api.post(URL, json=GOOD, headers=headers))
    )
    try:
        first.start()
        wait_for(lambda: _claimed(session, "in-flight-1"))
        before = table_counts(session)
        second = api.post(URL, json=GOOD, headers=headers)
        body = _problem(second, 409)
        assert "in progress" in body["detail"]
        assert table_counts(session) == before
    finally:
        locker.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _CHAIN_LOCK_KEY})
        locker.close()
        first.join(timeout=30)
    assert results["first"].status_code == 202
    replay = api.post(URL, json=GOOD, headers=headers)
    assert replay.json() == results["first"].json()


def test_callback_url_to_a_private_address(api, portal_headers, unchanged):
    payload = GOOD | {"callback_url": "http://10.1.2.3/hook"}
    body = _problem(api.post(URL, json=payload, headers=portal_headers), 422)
    assert body["errors"][0]["pointer"] == "#/callback_url"
