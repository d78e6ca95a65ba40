"""Display names: clients by id, and the actor of an audit event."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.auth import ApiClient

CLIENT_ACTOR_PREFIX = "client:"


def client_names(session: Session) -> dict[uuid.UUID, str]:
    return {c.id: c.name for c in session.execute(select(ApiClient.id, ApiClient.name))}


def actor_label(actor: str, names: dict[uuid.UUID, str]) -> str:
    """`client:<id>` as the client's name; `system` and `cli` as they are."""
    if actor.startswith(CLIENT_ACTOR_PREFIX):
        try:
            client_id = uuid.UUID(actor.removeprefix(CLIENT_ACTOR_PREFIX))
        except ValueError:
            return actor
        return names.get(client_id, actor)
    return actor
