"""API clients over the API and the CLI: list, create, revoke; revocation is immediate."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update
from typer.testing import CliRunner

from app.audit.models import AuditEvent
from app.cli import cli
from app.core.auth import ApiClient
from app.core.db import get_sessionmaker, utcnow


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _events(session, client_id: str) -> list[AuditEvent]:
    session.rollback()
    return list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.entity_type == "api_client", AuditEvent.entity_id == client_id)
            .order_by(AuditEvent.seq)
        )
    )


def test_create_list_and_revoke_over_the_api(api, admin_headers, session):
    created = api.post(
        "/v1/clients",
        json={"name": "portal-x", "scopes": ["requests:read"], "requires_approval": True},
        headers=admin_headers,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    key = body["key"]
    assert key.startswith(f"lth_{body['key_id']}_")
    assert body["scopes"] == ["requests:read"] and body["requires_approval"] is True
    assert api.get("/v1/erasure-requests", headers=_bearer(key)).status_code == 200

    listed = api.get("/v1/clients?revoked=false&limit=200", headers=admin_headers).json()
    mine = [c for c in listed["items"] if c["id"] == body["id"]]
    assert mine and "key" not in mine[0] and "key_hash" not in mine[0]
    assert key not in str(listed)

    revoked = api.post(f"/v1/clients/{body['id']}/revoke", headers=admin_headers)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    refused = api.get("/v1/erasure-requests", headers=_bearer(key))
    assert refused.status_code == 401
    again = api.post(f"/v1/clients/{body['id']}/revoke", headers=admin_headers)
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
    assert body["id"] in {
        c["id"] for c in api.get("/v1/clients?revoked=true", headers=admin_headers).json()["items"]
    }

    admin_id = api.get("/v1/clients?limit=1", headers=admin_headers)  # still works
    assert admin_id.status_code == 200
    events = _events(session, body["id"])
    assert [e.action for e in events] == ["api_client.created", "api_client.revoked"]
    assert all(e.actor.startswith("client:") for e in events)
    assert all(key not in str(e.data) for e in events)


def test_a_revocation_in_another_process_is_seen_on_the_next_request(api, make_key):
    """No per-process cache: a revocation written by anyone holds on the very next call."""
    key = make_key(["requests:read"])
    assert api.get("/v1/erasure-requests", headers=_bearer(key)).status_code == 200
    key_id = key.removeprefix("lth_").split("_", 1)[0]
    with get_sessionmaker()() as other:  # as another API process or the CLI would
        other.execute(
            update(ApiClient).where(ApiClient.key_id == key_id).values(revoked_at=utcnow())
        )
        other.commit()
    assert api.get("/v1/erasure-requests", headers=_bearer(key)).status_code == 401


def test_only_admins_manage_clients(api, portal_headers):
    assert api.get("/v1/clients", headers=portal_headers).status_code == 403
    create = api.post(
        "/v1/clients", json={"name": "x", "scopes": ["admin"]}, headers=portal_headers
    )
    assert create.status_code == 403


def test_bad_input_is_a_problem(api, admin_headers):
    unknown = api.post("/v1/clients", json={"name": "x", "scopes": ["root"]}, headers=admin_headers)
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["pointer"] == "#/scopes/0"
    empty = api.post("/v1/clients", json={"name": "x", "scopes": []}, headers=admin_headers)
    assert empty.status_code == 422
    missing = api.post(f"/v1/clients/{uuid.uuid4()}/revoke", headers=admin_headers)
    assert missing.status_code == 404


def test_the_cli_lists_creates_and_revokes(database, session):
    runner = CliRunner()
    created = runner.invoke(
        cli, ["clients", "create", "--name", "cli-made", "--scopes", "dashboard"]
    )
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("lth_")
    key_id = key.removeprefix("lth_").split("_", 1)[0]
    session.rollback()
    client = session.scalar(select(ApiClient).where(ApiClient.key_id == key_id))
    assert client is not None and client.scopes == ["dashboard"]

    listed = runner.invoke(cli, ["clients", "list"])
    assert listed.exit_code == 0 and str(client.id) in listed.stdout
    assert key not in listed.stdout

    revoked = runner.invoke(cli, ["clients", "revoke", str(client.id)])
    assert revoked.exit_code == 0, revoked.output
    assert str(client.id) not in runner.invoke(cli, ["clients", "list"]).stdout
    assert str(client.id) in runner.invoke(cli, ["clients", "list", "--all"]).stdout
    actions = [(e.action, e.actor) for e in _events(session, str(client.id))]
    assert actions == [("api_client.created", "cli"), ("api_client.revoked", "cli")]

    bad = runner.invoke(cli, ["clients", "create", "--name", "x", "--scopes", "root"])
    assert bad.exit_code == 2


def test_the_last_admin_cannot_be_revoked(sqlite_session):
    from app.clients import service
    from app.core.errors import ProblemError

    admin = service.create(sqlite_session, actor="cli", name="only", scopes=["admin"]).client
    sqlite_session.execute(
        update(ApiClient).where(ApiClient.id != admin.id).values(revoked_at=utcnow())
    )
    try:
        service.revoke(sqlite_session, actor="cli", client_id=admin.id)
    except ProblemError as exc:
        assert exc.status == 409 and exc.slug == "last-admin"
    else:
        raise AssertionError("the last admin was revoked")
    second = service.create(sqlite_session, actor="cli", name="second", scopes=["admin"]).client
    assert service.revoke(sqlite_session, actor="cli", client_id=admin.id).revoked_at is not None
    assert second.revoked_at is None
