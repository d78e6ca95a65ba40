from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from app.clients import service
from app.clients.schemas import ClientCreate, ClientOut, ClientPage, ClientWithKey
from app.core.auth import AdminClient
from app.core.db import SessionDep
from app.core.pagination import DEFAULT_LIMIT, MAX_LIMIT
from app.core.problems import Answer, problems

router = APIRouter(prefix="/v1/clients", tags=["clients"])


@router.get("", response_model=ClientPage)
def list_clients(
    session: SessionDep,
    _: AdminClient,
    revoked: bool | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> ClientPage:
    rows, next_cursor = service.list_clients(session, revoked=revoked, cursor=cursor, limit=limit)
    return ClientPage(items=[ClientOut.model_validate(c) for c in rows], next_cursor=next_cursor)


@router.post("", status_code=201, response_model=ClientWithKey)
def create_client(body: ClientCreate, session: SessionDep, admin: AdminClient) -> ClientWithKey:
    """The key is in this response only. No `Idempotency-Key` here: a replay would have to keep
    the key in clear to answer it again; a retried call makes a second key (revoke one)."""
    issued = service.create(
        session,
        actor=admin.actor,
        name=body.name,
        scopes=[s.value for s in body.scopes],
        requires_approval=body.requires_approval,
    )
    session.commit()
    return ClientWithKey(**ClientOut.model_validate(issued.client).model_dump(), key=issued.key)


@router.get("/{client_id}", response_model=ClientOut)
def get_client(client_id: uuid.UUID, session: SessionDep, _: AdminClient) -> ClientOut:
    return ClientOut.model_validate(service.get_client(session, client_id=client_id))


@router.post(
    "/{client_id}/revoke",
    response_model=ClientOut,
    responses=problems(Answer(409, "It is the last active admin client")),
)
def revoke_client(client_id: uuid.UUID, session: SessionDep, admin: AdminClient) -> ClientOut:
    client = service.revoke(session, actor=admin.actor, client_id=client_id)
    session.commit()
    return ClientOut.model_validate(client)
