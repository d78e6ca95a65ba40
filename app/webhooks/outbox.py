"""The webhook outbox: what publishers call, inside their own transaction.

`publish` writes one message for every endpoint of the client subscribed to its event type and
for each URL the publisher names (e.g. an erasure request's own `callback_url`), all with the
same `webhook-id`. It only writes rows; delivery happens in workers after the transaction
commits. The outbox knows no publisher: each registers its event types in
`app.webhooks.events`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.db import utcnow
from app.webhooks.events import check_known, message, new_message_id, subscribed
from app.webhooks.models import (
    EndpointStatus,
    Ordering,
    Target,
    WebhookDelivery,
    WebhookEndpoint,
)
from app.webhooks.queue import add_delivery


def publish(
    session: Session,
    *,
    client_id: uuid.UUID,
    event_type: str,
    data: dict[str, Any],
    subject: str | None = None,
    occurred_at: datetime | None = None,
    erasure_request_id: uuid.UUID | None = None,
    direct_urls: Sequence[str] = (),
    ring: bool = True,
) -> list[WebhookDelivery]:
    """Queue `event_type` for the client's subscribed endpoints and for `direct_urls`.

    Messages with the same `subject` (e.g. `erasure_request:<id>`, `model:<id>`) reach each
    destination in the order they were published, unless the endpoint is `independent`.
    `direct_urls` share no secret with us, so they get `v1a` signatures.
    With `ring=False` no task is enqueued at commit and the beat sweep picks the rows up.
    """
    check_known(event_type)
    message_id = new_message_id()
    body = message(event_type=event_type, occurred_at=occurred_at or utcnow(), data=data)
    endpoints = session.scalars(
        select(WebhookEndpoint)
        .where(
            WebhookEndpoint.client_id == client_id,
            WebhookEndpoint.status == EndpointStatus.ACTIVE.value,
        )
        .order_by(WebhookEndpoint.created_at)
    )
    targets: list[tuple[Target, str, uuid.UUID | None, Ordering]] = [
        (Target.ENDPOINT, endpoint.url, endpoint.id, Ordering(endpoint.ordering))
        for endpoint in endpoints
        if subscribed(endpoint.events, event_type)
    ]
    targets += [(Target.CALLBACK, url, None, Ordering.ORDERED) for url in direct_urls]
    return [
        add_delivery(
            session,
            message_id=message_id,
            client_id=client_id,
            target=target,
            url=url,
            event_type=event_type,
            payload=body,
            subject=subject,
            endpoint_id=endpoint_id,
            erasure_request_id=erasure_request_id,
            ordering=ordering,
            ring=ring,
        )
        for target, url, endpoint_id, ordering in targets
    ]


def emit(
    session: Session,
    *,
    client_id: uuid.UUID,
    event_type: str,
    data: dict[str, Any],
    subject: str | None = None,
    ring: bool = True,
) -> list[WebhookDelivery]:
    """`publish` to the client's endpoints only, timestamped now."""
    return publish(
        session, client_id=client_id, event_type=event_type, data=data, subject=subject, ring=ring
    )
