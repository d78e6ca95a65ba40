"""The webhook outbox: what the workflow layer calls, inside the caller's transaction.

`request_transitioned` is called by `app.erasure.lifecycle` for every status change; `emit` is
the public entry for any other event (e.g. `model.version_activated`). Both only write rows;
delivery happens in workers after the transaction commits.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.db import utcnow
from app.erasure.models import ErasureRequest
from app.opendsr.callbacks import queue_status_callbacks
from app.webhooks.events import (
    EVENT_TYPES,
    message,
    new_message_id,
    request_event_data,
    subscribed,
)
from app.webhooks.models import EndpointStatus, Target, WebhookDelivery, WebhookEndpoint
from app.webhooks.queue import add_delivery


def emit(
    session: Session,
    *,
    client_id: uuid.UUID,
    event_type: str,
    data: dict[str, Any],
    subject: str | None = None,
    ring: bool = True,
) -> list[WebhookDelivery]:
    """Queue `event_type` for each of the client's active endpoints subscribed to it.

    `data` must be thin: ids, statuses and links, never identity values. Events with the same
    `subject` (e.g. `model:<id>`) reach each endpoint in the order they were emitted. With
    `ring=False` no task is enqueued at commit and the beat sweep picks the rows up.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    body = message(event_type=event_type, occurred_at=utcnow(), data=data)
    return _to_endpoints(
        session,
        client_id=client_id,
        event_type=event_type,
        body=body,
        message_id=new_message_id(),
        subject=subject,
        erasure_request_id=None,
        ring=ring,
    )


def request_transitioned(
    session: Session, *, request: ErasureRequest, previous_status: str | None
) -> None:
    """Queue the transition to `request.status` for the client's endpoints, the request's own
    `callback_url`, and (when the OpenDSR status changed) its OpenDSR status callbacks."""
    event_type = f"erasure_request.{request.status}"
    message_id = new_message_id()
    subject = f"erasure_request:{request.id}"
    body = message(
        event_type=event_type,
        occurred_at=request.updated_at or utcnow(),
        data=request_event_data(request, previous_status=previous_status),
    )
    _to_endpoints(
        session,
        client_id=request.client_id,
        event_type=event_type,
        body=body,
        message_id=message_id,
        subject=subject,
        erasure_request_id=request.id,
        ring=True,
    )
    if request.callback_url:
        add_delivery(
            session,
            message_id=message_id,
            client_id=request.client_id,
            target=Target.CALLBACK,
            url=request.callback_url,
            event_type=event_type,
            payload=body,
            subject=subject,
            erasure_request_id=request.id,
        )
    if previous_status is not None:
        # A new request has no OpenDSR row yet: the OpenDSR route queues its first callback
        # itself once it has created one.
        queue_status_callbacks(session, request=request, previous_status=previous_status)


def _to_endpoints(
    session: Session,
    *,
    client_id: uuid.UUID,
    event_type: str,
    body: dict[str, Any],
    message_id: str,
    subject: str | None,
    erasure_request_id: uuid.UUID | None,
    ring: bool,
) -> list[WebhookDelivery]:
    endpoints = session.scalars(
        select(WebhookEndpoint)
        .where(
            WebhookEndpoint.client_id == client_id,
            WebhookEndpoint.status == EndpointStatus.ACTIVE.value,
        )
        .order_by(WebhookEndpoint.created_at)
    )
    return [
        add_delivery(
            session,
            message_id=message_id,
            client_id=client_id,
            target=Target.ENDPOINT,
            url=endpoint.url,
            event_type=event_type,
            payload=body,
            subject=subject,
            endpoint_id=endpoint.id,
            erasure_request_id=erasure_request_id,
            ring=ring,
        )
        for endpoint in endpoints
        if subscribed(endpoint.events, event_type)
    ]
