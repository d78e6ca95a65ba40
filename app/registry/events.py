"""The model events webhook subscribers may receive, published in the caller's transaction.

Registering `model.version_activated` and `model.version_held` here keeps the webhook transport
ignorant of models; the registry is the one place that says what a version activation (or a
hold) tells the outside.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from app.webhooks.events import register_event_types
from app.webhooks.outbox import emit

VERSION_ACTIVATED = "model.version_activated"
VERSION_HELD = "model.version_held"

register_event_types(VERSION_ACTIVATED, VERSION_HELD)


def publish_version_activated(
    session: Session, *, client_id: uuid.UUID, data: dict[str, Any]
) -> None:
    """`data` is thin (ids, numbers, links); events of one model arrive in order."""
    emit(
        session,
        client_id=client_id,
        event_type=VERSION_ACTIVATED,
        data=data,
        subject=f"model:{data['model_id']}",
    )


def publish_version_held(session: Session, *, client_id: uuid.UUID, data: dict[str, Any]) -> None:
    """A training run's version was held back for an admin; `data` carries its figures."""
    emit(
        session,
        client_id=client_id,
        event_type=VERSION_HELD,
        data=data,
        subject=f"model:{data['model_id']}",
    )
