"""Adding outbox rows, and ringing the broker's doorbell once they are committed.

A row's `stream` decides what it waits for: deliveries to one destination about one subject
(one erasure request, one model) are sent in order, unless the destination is an endpoint
whose ordering is `independent`; then each delivery is a stream of its own.

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
from app.webhooks.models import Ordering, Target, WebhookDelivery


def stream_key(*, target: Target, destination: str, subject: str) -> str:
    return hashlib.sha256(f"{target.value}|{destination}|{subject}".encode()).hexdigest()


def own_stream(delivery: WebhookDelivery) -> str:
    """The stream of `delivery` alone: it waits for no other delivery."""
    destination = str(delivery.endpoint_id or delivery.url)
    return stream_key(
        target=Target(delivery.target), destination=destination, subject=delivery.message_id
    )


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
    ordering: Ordering = Ordering.ORDERED,
    ring: bool = True,
    now: datetime | None = None,
) -> WebhookDelivery:
    """Queue one message for one URL. Deliveries that share a `subject` and a destination are
    sent in the order they were queued; without a subject, or `independent`, each is its own
    stream."""
    created_at = now or utcnow()
    if ordering is Ordering.INDEPENDENT:
        subject = None
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
    ring_stream_after_commit(session, delivery_id=delivery.id, stream=delivery.stream)


def ring_stream_after_commit(session: Session, *, delivery_id: int, stream: str) -> None:
    """Enqueue one delivery task for `stream` (named by one of its deliveries) at commit."""
    enqueue_after_commit(
        session, DELIVER_WEBHOOKS, args=[delivery_id], dedupe_key=("webhooks", stream)
    )
