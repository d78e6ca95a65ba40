from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime, new_id, utcnow

BigId = BigInteger().with_variant(Integer, "sqlite")


class EndpointStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"  # the receiver answered 410 Gone
    DELETED = "deleted"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    DEAD = "dead"  # every attempt failed, or the endpoint went away; can be redelivered
    CANCELLED = "cancelled"  # its endpoint was deleted


class Ordering(StrEnum):
    """How an endpoint's deliveries wait for each other."""

    ORDERED = "ordered"  # after the earlier undelivered ones of the same request, or model
    INDEPENDENT = "independent"  # each on its own: no waiting


class Target(StrEnum):
    ENDPOINT = "endpoint"  # a registered endpoint: Standard Webhooks `v1` (HMAC) signatures
    CALLBACK = "callback"  # a request's own `callback_url`: `v1a` (Ed25519) signatures
    OPENDSR = "opendsr"  # an OpenDSR `status_callback_urls` entry: X-OpenDSR-Signature


class WebhookEndpoint(Base):
    """A client's subscription. The secret is kept in clear: HMAC signing needs it."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_client", "client_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("api_clients.id"))
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(String(100))
    previous_secret: Mapped[str | None] = mapped_column(String(100), nullable=True)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=EndpointStatus.ACTIVE.value)
    ordering: Mapped[str] = mapped_column(
        String(16), default=Ordering.ORDERED.value, server_default=Ordering.ORDERED.value
    )
    disabled_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(Base):
    """One message to one URL: the outbox row, and the truth about its delivery.

    Deliveries with the same `stream` (one destination and one subject, e.g. one erasure
    request or one model) are sent strictly in `id` order: a later one waits while an earlier
    one is pending. To an `independent` endpoint, each delivery is a stream of its own.
    `attempts` counts every attempt ever made; `round_attempts` those since the last
    redelivery, which the retry schedule follows.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_stream", "stream", "status", "id"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "id"),
        Index("ix_webhook_deliveries_client", "client_id", "id"),
        Index("ix_webhook_deliveries_request", "erasure_request_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(40))
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("api_clients.id"))
    target: Mapped[str] = mapped_column(String(16))
    endpoint_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("webhook_endpoints.id"), nullable=True
    )
    erasure_request_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    url: Mapped[str] = mapped_column(String(2000))
    event_type: Mapped[str] = mapped_column(String(64))
    stream: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    round_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    first_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    attempt_log: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    succeeded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
