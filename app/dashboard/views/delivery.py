"""Webhook endpoints with their recent deliveries and failures; API clients."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.auth import ApiClient
from app.webhooks.models import DeliveryStatus, EndpointStatus, WebhookDelivery, WebhookEndpoint

RECENT_PER_ENDPOINT = 10
RECENT_FAILURES = 25


@dataclass
class EndpointView:
    endpoint: WebhookEndpoint
    client_name: str
    counts: dict[str, int] = field(default_factory=dict)
    recent: list[WebhookDelivery] = field(default_factory=list)


@dataclass
class DeliveryOverview:
    endpoints: list[EndpointView]
    failures: list[WebhookDelivery]
    client_names: dict[uuid.UUID, str]


def redeliverable(delivery: WebhookDelivery, endpoints: dict[uuid.UUID, WebhookEndpoint]) -> bool:
    """The webhook service redelivers (sends now) a delivery whose endpoint, if it has one, is
    active: a finished one again, a pending one at once."""
    if delivery.endpoint_id is None:
        return True
    endpoint = endpoints.get(delivery.endpoint_id)
    return endpoint is not None and endpoint.status == EndpointStatus.ACTIVE.value


def overview(session: Session) -> DeliveryOverview:
    names = {c.id: c.name for c in session.execute(select(ApiClient.id, ApiClient.name))}
    endpoints = list(
        session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.status != EndpointStatus.DELETED.value)
            .order_by(WebhookEndpoint.created_at)
        )
    )
    ids = [e.id for e in endpoints]
    counts: dict[uuid.UUID, dict[str, int]] = defaultdict(dict)
    for endpoint_id, status, count in session.execute(
        select(WebhookDelivery.endpoint_id, WebhookDelivery.status, func.count())
        .where(WebhookDelivery.endpoint_id.in_(ids))
        .group_by(WebhookDelivery.endpoint_id, WebhookDelivery.status)
    ):
        if endpoint_id is not None:
            counts[endpoint_id][status] = count
    views = []
    for endpoint in endpoints:
        recent = list(
            session.scalars(
                select(WebhookDelivery)
                .where(WebhookDelivery.endpoint_id == endpoint.id)
                .order_by(WebhookDelivery.id.desc())
                .limit(RECENT_PER_ENDPOINT)
            )
        )
        views.append(
            EndpointView(
                endpoint=endpoint,
                client_name=names.get(endpoint.client_id, str(endpoint.client_id)),
                counts=counts.get(endpoint.id, {}),
                recent=recent,
            )
        )
    failures = list(
        session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.status == DeliveryStatus.DEAD.value)
            .order_by(WebhookDelivery.id.desc())
            .limit(RECENT_FAILURES)
        )
    )
    return DeliveryOverview(endpoints=views, failures=failures, client_names=names)


def clients(session: Session) -> list[ApiClient]:
    """Active clients first, then revoked ones; newest first within each."""
    return list(
        session.scalars(
            select(ApiClient).order_by(
                ApiClient.revoked_at.is_not(None), ApiClient.created_at.desc()
            )
        )
    )
