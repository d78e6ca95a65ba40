"""The audit chain: append-only in the database, and verification names the first broken link."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.audit.service import append_event, verify_chain
from app.core.db import make_engine
from app.core.migrate import upgrade


@pytest.fixture
def chain_session(fresh_pg_database):
    url = fresh_pg_database()
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as s:
        for n in range(5):
            append_event(
                s,
                actor="test",
                action="demo.event",
                entity_type="demo",
                entity_id=str(n),
                data={"n": n},
            )
        s.commit()
        yield s
    engine.dispose()


def test_chain_verifies(chain_session):
    result = verify_chain(chain_session)
    assert result.ok
    assert result.events_checked == 5
    assert result.head_seq == 5


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_events SET actor = 'x'", "DELETE FROM audit_events", "TRUNCATE audit_events"],
)
def test_postgres_refuses_changes(chain_session, statement):
    with pytest.raises(DBAPIError, match="append-only"):
        chain_session.execute(text(statement))
    chain_session.rollback()
    assert verify_chain(chain_session).events_checked == 5


def test_tampered_row_is_named(chain_session):
    chain_session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
    chain_session.execute(text("UPDATE audit_events SET data = '{\"n\": 99}' WHERE seq = 3"))
    chain_session.execute(text("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only"))
    chain_session.commit()
    result = verify_chain(chain_session)
    assert not result.ok
    assert result.first_broken.seq == 3
    assert result.first_broken.reason == "content does not match its hash"
    assert result.events_checked == 2


def test_deleted_row_is_named(chain_session):
    chain_session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
    chain_session.execute(text("DELETE FROM audit_events WHERE seq = 2"))
    chain_session.execute(text("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only"))
    chain_session.commit()
    result = verify_chain(chain_session)
    assert result.first_broken.seq == 3
    assert "sequence gap" in result.first_broken.reason


def test_verify_endpoint_and_export(api, admin_headers, portal_headers):
    api.post(
        "/v1/erasure-requests",
        json={"identities": [{"type": "user_id", "value": "audit-1"}]},
        headers=portal_headers,
    )
    verified = api.get("/v1/audit/verify", headers=admin_headers).json()
    assert verified["ok"] is True
    assert verified["events_checked"] >= 1
    assert api.get("/v1/audit/verify", headers=portal_headers).status_code == 403
    exported = api.get("/v1/audit/events", params={"limit": 1}, headers=admin_headers).json()
    assert exported["items"][0]["seq"] == 1
    assert exported["next_after_seq"] == 1


def test_signed_checkpoint_names_the_head(api, admin_headers, portal_headers):
    from app.audit.signing import verify_token

    response = api.get("/v1/audit/checkpoint", headers=admin_headers)
    assert response.status_code == 200
    body = response.json()
    header, claims = verify_token(body["jws"], api.get("/v1/.well-known/jwks.json").json())
    assert header["alg"] == "Ed25519" and header["typ"] == "lethe-audit-checkpoint+jws"
    verified = api.get("/v1/audit/verify", headers=admin_headers).json()
    assert claims["head_seq"] <= verified["head_seq"]
    assert claims == body["claims"]
    assert api.get("/v1/audit/checkpoint", headers=portal_headers).status_code == 403
