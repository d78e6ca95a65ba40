"""Webhook endpoints (create, list, delete, rotate the secret) and their deliveries."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.audit.service import append_event
from app.core.auth import ApiClient
from app.core.db import utcnow
from app.core.errors import NotFound, ProblemError
from app.webhooks.models import (
    DeliveryStatus,
    EndpointStatus,
    Ordering,
    WebhookDelivery,
    WebhookEndpoint,
)
from app.webhooks.queue import own_stream, ring_after_commit
from app.webhooks.signing import new_secret
from app.webhooks.streams import expedite, waiting_on
from app.webhooks.urls import Unresolvable, UnsafeUrl, check_url

MAX_ENDPOINTS_PER_CLIENT = 20


def _actor(client: ApiClient) -> str:
    return f"client:{client.id}"


def _audit(session: Session, *, client: ApiClient, action: str, endpoint: WebhookEndpoint) -> None:
    append_event(
        session,
        actor=_actor(client),
        action=f"webhook_endpoint.{action}",
        entity_type="webhook_endpoint",
        entity_id=str(endpoint.id),
        data={"events": endpoint.events, "status": endpoint.status, "ordering": endpoint.ordering},
    )


def check_callback_url(url: str, *, pointer: str, status: int = 422) -> None:
    """The SSRF guard for a callback URL sent with a request. A host that does not resolve now
    is accepted: refusing would lose the erasure request itself, and each attempt checks again."""
    try:
        check_url(url)
    except Unresolvable:
        return
    except UnsafeUrl as exc:
        raise ProblemError(
            status,
            f"This URL cannot receive callbacks: {exc}",
            slug="unsafe-url",
            title="URL not allowed",
            errors=[{"pointer": pointer, "detail": str(exc)}],
        ) from None


def check_public_url(url: str, *, pointer: str) -> None:
    """The SSRF guard as a 422 problem pointing at the offending field."""
    try:
        check_url(url)
    except UnsafeUrl as exc:
        raise ProblemError(
            422,
            f"This URL cannot receive webhooks: {exc}",
            slug="unsafe-url",
            title="URL not allowed",
            errors=[{"pointer": pointer, "detail": str(exc)}],
        ) from None


def create_endpoint(
    session: Session,
    *,
    client: ApiClient,
    url: str,
    events: list[str],
    ordering: Ordering = Ordering.ORDERED,
) -> tuple[WebhookEndpoint, str]:
    """Returns the endpoint and its secret (shown to the caller once)."""
    check_public_url(url, pointer="#/url")
    count = session.scalar(
        select(func.count())
        .select_from(WebhookEndpoint)
        .where(
            WebhookEndpoint.client_id == client.id,
            WebhookEndpoint.status != EndpointStatus.DELETED.value,
        )
    )
    if (count or 0) >= MAX_ENDPOINTS_PER_CLIENT:
        raise ProblemError(
            409,
            f"A client may have at most {MAX_ENDPOINTS_PER_CLIENT} webhook endpoints",
            slug="too-many-endpoints",
        )
    secret = new_secret()
    now = utcnow()
    endpoint = WebhookEndpoint(
        client_id=client.id,
        url=url,
        events=events,
        secret=secret,
        status=EndpointStatus.ACTIVE.value,
        ordering=ordering.value,
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    session.flush()
    _audit(session, client=client, action="created", endpoint=endpoint)
    return endpoint, secret


def list_endpoints(session: Session, *, client: ApiClient) -> list[WebhookEndpoint]:
    query = select(WebhookEndpoint).where(WebhookEndpoint.status != EndpointStatus.DELETED.value)
    if not client.is_admin:
        query = query.where(WebhookEndpoint.client_id == client.id)
    return list(session.scalars(query.order_by(WebhookEndpoint.created_at)))


def get_endpoint(
    session: Session, *, client: ApiClient, endpoint_id: uuid.UUID, for_update: bool = False
) -> WebhookEndpoint:
    query = select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
    if for_update:
        query = query.with_for_update()
    endpoint = session.scalar(query)
    if (
        endpoint is None
        or endpoint.status == EndpointStatus.DELETED.value
        or (not client.is_admin and endpoint.client_id != client.id)
    ):
        raise NotFound("Webhook endpoint")
    return endpoint


def delete_endpoint(session: Session, *, client: ApiClient, endpoint_id: uuid.UUID) -> None:
    """Stop sending to it; its pending deliveries are cancelled, its history stays."""
    endpoint = get_endpoint(session, client=client, endpoint_id=endpoint_id, for_update=True)
    endpoint.status = EndpointStatus.DELETED.value
    endpoint.updated_at = utcnow()
    session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id == endpoint.id,
            WebhookDelivery.status == DeliveryStatus.PENDING.value,
        )
        .values(status=DeliveryStatus.CANCELLED.value, next_attempt_at=None, lease_until=None)
    )
    _audit(session, client=client, action="deleted", endpoint=endpoint)


def set_ordering(
    session: Session, *, client: ApiClient, endpoint_id: uuid.UUID, ordering: Ordering
) -> WebhookEndpoint:
    """Change how the endpoint's deliveries wait for each other. Deliveries queued later follow
    the new ordering; on a change to `independent`, pending ones stop waiting at once."""
    endpoint = get_endpoint(session, client=client, endpoint_id=endpoint_id, for_update=True)
    if endpoint.ordering == ordering.value:
        return endpoint
    endpoint.ordering = ordering.value
    endpoint.updated_at = utcnow()
    if ordering is Ordering.INDEPENDENT:
        pending = session.scalars(
            select(WebhookDelivery)
            .where(
                WebhookDelivery.endpoint_id == endpoint.id,
                WebhookDelivery.status == DeliveryStatus.PENDING.value,
            )
            .with_for_update()
        )
        for delivery in pending:
            delivery.stream = own_stream(delivery)
            ring_after_commit(session, delivery)
    _audit(session, client=client, action="updated", endpoint=endpoint)
    return endpoint


def rotate_secret(
    session: Session, *, client: ApiClient, endpoint_id: uuid.UUID, overlap: timedelta
) -> tuple[WebhookEndpoint, str]:
    """A new secret; for `overlap`, deliveries are signed with both the new and the old one."""
    endpoint = get_endpoint(session, client=client, endpoint_id=endpoint_id, for_update=True)
    now = utcnow()
    secret = new_secret()
    if overlap > timedelta(0):
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = now + overlap
    else:
        endpoint.previous_secret = None
        endpoint.previous_secret_expires_at = None
    endpoint.secret = secret
    endpoint.updated_at = now
    _audit(session, client=client, action="secret_rotated", endpoint=endpoint)
    return endpoint, secret


def list_deliveries(
    session: Session,
    *,
    client: ApiClient,
    endpoint_id: uuid.UUID | None = None,
    erasure_request_id: uuid.UUID | None = None,
    status: DeliveryStatus | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[WebhookDelivery], str | None]:
    """Newest first; `cursor` is the `next_cursor` of the previous page."""
    query = select(WebhookDelivery)
    if endpoint_id is not None:
        get_endpoint(session, client=client, endpoint_id=endpoint_id)
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    elif not client.is_admin:
        query = query.where(WebhookDelivery.client_id == client.id)
    if erasure_request_id is not None:
        query = query.where(WebhookDelivery.erasure_request_id == erasure_request_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status.value)
    if cursor:
        if not cursor.isdigit():
            raise ProblemError(
                422,
                "The cursor is not one this API returned",
                errors=[{"parameter": "cursor", "in": "query", "detail": "invalid cursor"}],
            )
        query = query.where(WebhookDelivery.id < int(cursor))
    rows = list(session.scalars(query.order_by(WebhookDelivery.id.desc()).limit(limit + 1)))
    next_cursor = str(rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


def waiting(
    session: Session, *, deliveries: Sequence[WebhookDelivery]
) -> dict[int, WebhookDelivery]:
    """For each pending delivery of `deliveries` held behind an earlier one: that one."""
    return waiting_on(session, deliveries=deliveries)


def redeliver(
    session: Session,
    *,
    client: ApiClient,
    delivery_id: int,
    endpoint_id: uuid.UUID | None = None,
) -> WebhookDelivery:
    """Send a delivery now, with the same `webhook-id`, in a fresh round of attempts (the retry
    schedule starts again; `attempts` keeps counting). A pending delivery that waits for
    earlier ones of its stream is sent right after them, and they are sent now too."""
    delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if (
        delivery is None
        or (endpoint_id is not None and delivery.endpoint_id != endpoint_id)
        or (not client.is_admin and delivery.client_id != client.id)
    ):
        raise NotFound("Webhook delivery")
    if delivery.endpoint_id is not None:
        endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
        if endpoint is None or endpoint.status != EndpointStatus.ACTIVE.value:
            raise ProblemError(
                409,
                "The delivery's endpoint is disabled or deleted; register a new endpoint",
                slug="endpoint-inactive",
            )
    now = utcnow()
    if delivery.status != DeliveryStatus.PENDING.value:
        delivery.status = DeliveryStatus.PENDING.value
        delivery.succeeded_at = None
        delivery.lease_until = None
    delivery.round_attempts = 0
    delivery.first_attempt_at = None
    delivery.next_attempt_at = now
    session.flush()
    expedite(session, delivery=delivery, now=now)
    return delivery
