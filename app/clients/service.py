"""Listing, creating and revoking API clients. Each change is audited with who made it.

A revocation takes effect with the commit: every API process reads the client's row on every
request (`app.core.auth`), and a dashboard session ends with its client.
"""

from __future__ import annotations

import uuid

from sqlalchemy import or_, select, tuple_
from sqlalchemy.orm import Session

from app.audit.service import append_event
from app.core.auth import ApiClient, IssuedKey, create_client
from app.core.db import utcnow
from app.core.errors import NotFound, ProblemError
from app.core.pagination import decode_cursor, encode_cursor
from app.core.scopes import Scope

CLI_ACTOR = "cli"


def _audit(session: Session, *, actor: str, action: str, client: ApiClient) -> None:
    append_event(
        session,
        actor=actor,
        action=f"api_client.{action}",
        entity_type="api_client",
        entity_id=str(client.id),
        data={
            "name": client.name,
            "key_id": client.key_id,
            "scopes": client.scopes,
            "requires_approval": client.requires_approval,
        },
    )


def list_clients(
    session: Session,
    *,
    revoked: bool | None = None,
    cursor: str | None = None,
    limit: int = 200,
) -> tuple[list[ApiClient], str | None]:
    """Newest first; `revoked` keeps only revoked (True) or only active (False) clients."""
    query = select(ApiClient)
    if revoked is not None:
        query = query.where(
            ApiClient.revoked_at.is_not(None) if revoked else ApiClient.revoked_at.is_(None)
        )
    if cursor:
        at, last_id = decode_cursor(cursor)
        query = query.where(
            or_(
                ApiClient.created_at < at,
                (ApiClient.created_at == at) & (ApiClient.id < last_id),
            )
            if session.get_bind().dialect.name == "sqlite"
            else tuple_(ApiClient.created_at, ApiClient.id) < tuple_(at, last_id)
        )
    rows = list(
        session.scalars(
            query.order_by(ApiClient.created_at.desc(), ApiClient.id.desc()).limit(limit + 1)
        )
    )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(at=rows[-1].created_at, id=rows[-1].id)
    return rows, next_cursor


def get_client(session: Session, *, client_id: uuid.UUID, for_update: bool = False) -> ApiClient:
    query = select(ApiClient).where(ApiClient.id == client_id)
    if for_update:
        query = query.with_for_update()
    client = session.scalar(query)
    if client is None:
        raise NotFound("API client")
    return client


def create(
    session: Session, *, actor: str, name: str, scopes: list[str], requires_approval: bool = False
) -> IssuedKey:
    """A new client and its key (the caller shows the key once; only its hash is kept)."""
    try:
        issued = create_client(
            session, name=name, scopes=scopes, requires_approval=requires_approval
        )
    except ValueError as exc:
        raise ProblemError(
            422, str(exc), errors=[{"pointer": "#/scopes", "detail": str(exc)}]
        ) from None
    _audit(session, actor=actor, action="created", client=issued.client)
    return issued


def _other_active_admins(session: Session, *, client_id: uuid.UUID) -> int:
    active = session.scalars(
        select(ApiClient.scopes).where(ApiClient.revoked_at.is_(None), ApiClient.id != client_id)
    )
    return sum(1 for scopes in active if Scope.ADMIN.value in scopes)


def revoke(session: Session, *, actor: str, client_id: uuid.UUID) -> ApiClient:
    """Revoke the client's key from the commit on. Revoking a revoked client changes nothing;
    the last active admin cannot be revoked (nobody could manage keys any more)."""
    client = get_client(session, client_id=client_id, for_update=True)
    if client.is_revoked:
        return client
    if client.is_admin and _other_active_admins(session, client_id=client.id) == 0:
        raise ProblemError(
            409,
            "This is the last active admin client; create another admin key first",
            slug="last-admin",
        )
    client.revoked_at = utcnow()
    _audit(session, actor=actor, action="revoked", client=client)
    return client
