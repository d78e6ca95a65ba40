"""Adding outbox rows, and ringing the broker's doorbell once they are committed.

A row is written in the caller's transaction. Only after that transaction commits is a
delivery task enqueued (one per stream); a rollback forgets the doorbell. A lost message is
harmless: the beat sweep finds every due row.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.core.broker import DELIVER_WEBHOOKS, enqueue_after_commit
from app.core.db import utcnow
from app.webhooks.models import Target, WebhookDelivery


def stream_key(*, target: Target, destination: str, subject: str) -> str:
    return hashlib.sha256(f"{target.value}|{destination}|{subject}".encode()).hexdigest()


def add_delivery(
    session: Session,
    *,
    message_id: str,
    client_id: uuid.UUID,
    target: Target,
    url: str,
    event_type: str,
    payload: dict[str, Any],
    subject: str | None,
    endpoint_id: uuid.UUID | None = None,
    erasure_request_id: uuid.UUID | None = None,
    ring: bool = True,
    now: datetime | None = None,
) -> WebhookDelivery:
    """Queue one message for one URL. Deliveries that share a `subject` and a destination are
    sent in the order they were queued; without a subject, each is its own stream."""
    created_at = now or utcnow()
    delivery = WebhookDelivery(
        message_id=message_id,
        client_id=client_id,
        target=target.value,
        endpoint_id=endpoint_id,
        erasure_request_id=erasure_request_id,
        url=url,
        event_type=event_type,
        stream=stream_key(
            target=target, destination=str(endpoint_id or url), subject=subject or message_id
        ),
        payload=payload,
        attempt_log=[],
        next_attempt_at=created_at,
        created_at=created_at,
    )
    session.add(delivery)
    session.flush()
    if ring:
        ring_after_commit(session, delivery)
    return delivery


def ring_after_commit(session: Session, delivery: WebhookDelivery) -> None:
    """Enqueue a delivery task for `delivery`'s stream once this transaction commits."""
    enqueue_after_commit(
        session, DELIVER_WEBHOOKS, args=[delivery.id], dedupe_key=("webhooks", delivery.stream)
    )
