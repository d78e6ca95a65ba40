"""Sending outbox rows: claim, sign, POST, record, schedule the next attempt.

A 2xx from a destination also ends the back-off of its other pending deliveries
(`streams.release_destination`): a receiver back from an outage gets them at once.

Every function takes `now`, the clock that decides what is due and when the next attempt is
(tests pass their own); the `webhook-timestamp` header always carries the real sending time,
because receivers compare it with their own clock. Functions here commit.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx
import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session, aliased

from app.core.broker import DELIVER_WEBHOOKS, enqueue
from app.core.config import get_settings
from app.core.db import utcnow
from app.webhooks.models import (
    DeliveryStatus,
    EndpointStatus,
    Target,
    WebhookDelivery,
    WebhookEndpoint,
)
from app.webhooks.signing import Outgoing, signer_for
from app.webhooks.streams import release_destination
from app.webhooks.urls import UnsafeUrl, check_url

log = structlog.get_logger(__name__)

# When each retry is due, measured from the first attempt.
RETRY_OFFSETS: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=14),
    timedelta(hours=20),
    timedelta(hours=24),
)
MAX_ATTEMPTS = 1 + len(RETRY_OFFSETS)
JITTER_FRACTION = 0.1  # a retry lands up to 10% of its gap after its nominal time
MAX_RETRY_AFTER = timedelta(hours=24)
LEASE = timedelta(seconds=90)
ETA_DOORBELL_LIMIT = timedelta(minutes=10)  # later retries are left to the beat sweep
ATTEMPT_LOG_LIMIT = 20
USER_AGENT = "Lethe-Webhooks/1.0"

_jitter = random.Random()
D = WebhookDelivery


@dataclass(frozen=True)
class Attempt:
    status_code: int | None
    error: str | None
    retry_after: timedelta | None = None
    duration_ms: int = 0

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def retry_at(
    *, first_attempt_at: datetime, attempts: int, now: datetime, retry_after: timedelta | None
) -> datetime | None:
    """When attempt number `attempts + 1` of a round is due, or None when `attempts` were the
    last (a round starts with the first attempt, or with a redelivery)."""
    if attempts >= MAX_ATTEMPTS:
        return None
    offset = RETRY_OFFSETS[attempts - 1]
    gap = offset - (RETRY_OFFSETS[attempts - 2] if attempts >= 2 else timedelta(0))
    due = first_attempt_at + offset + gap * JITTER_FRACTION * _jitter.random()
    if retry_after is not None:
        due = max(due, now + min(retry_after, MAX_RETRY_AFTER))
    return due


def parse_retry_after(value: str | None, *, now: datetime) -> timedelta | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(moment - now, timedelta(0)) if moment.tzinfo else None


def signed_request(
    delivery: WebhookDelivery, endpoint: WebhookEndpoint | None, *, sent_at: datetime
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False).encode()
    secrets_: tuple[str, ...] = ()
    if endpoint is not None:
        secrets_ = (endpoint.secret,)
        expires = endpoint.previous_secret_expires_at
        if endpoint.previous_secret and expires and expires > sent_at:
            secrets_ += (endpoint.previous_secret,)
    sign = signer_for(Target(delivery.target))
    outgoing = Outgoing(
        message_id=delivery.message_id, body=body, sent_at=sent_at, secrets=secrets_
    )
    return body, {"content-type": "application/json", "user-agent": USER_AGENT} | sign(outgoing)


def send(
    http: httpx.Client, delivery: WebhookDelivery, endpoint: WebhookEndpoint | None
) -> Attempt:
    """One POST. Errors name what went wrong, never the URL (it may carry a token)."""
    try:
        check_url(delivery.url)
    except UnsafeUrl as exc:
        return Attempt(status_code=None, error=f"refused: {exc}")
    sent_at = utcnow()
    body, headers = signed_request(delivery, endpoint, sent_at=sent_at)
    try:
        with http.stream("POST", delivery.url, content=body, headers=headers) as response:
            elapsed = int((utcnow() - sent_at).total_seconds() * 1000)
            return Attempt(
                status_code=response.status_code,
                error=None if response.is_success else f"HTTP {response.status_code}",
                retry_after=parse_retry_after(response.headers.get("retry-after"), now=utcnow()),
                duration_ms=elapsed,
            )
    except httpx.TimeoutException:
        return Attempt(status_code=None, error="timed out")
    except httpx.HTTPError as exc:
        return Attempt(status_code=None, error=f"connection failed ({type(exc).__name__})")


def _claim_head(
    session: Session, *, stream: str, now: datetime
) -> tuple[WebhookDelivery, WebhookEndpoint | None] | None:
    """Lease the oldest pending delivery of a stream if it is due and nobody is sending it.

    Returns it and its endpoint detached, with the transaction ended: no lock (and, on SQLite,
    no write transaction) is held while the request is in flight.
    """
    while True:
        head = session.scalar(
            select(D)
            .where(D.stream == stream, D.status == DeliveryStatus.PENDING.value)
            .order_by(D.id)
            .limit(1)
            .with_for_update()
        )
        real_now = utcnow()
        if (
            head is None
            or (head.next_attempt_at is not None and head.next_attempt_at > now)
            or (head.lease_until is not None and head.lease_until > real_now)
        ):
            session.rollback()
            return None
        endpoint = session.get(WebhookEndpoint, head.endpoint_id) if head.endpoint_id else None
        if endpoint is not None and endpoint.status != EndpointStatus.ACTIVE.value:
            _finish(head, status=DeliveryStatus.DEAD, reason="endpoint disabled")
            session.commit()
            continue
        head.lease_until = real_now + LEASE
        session.flush()
        session.expunge(head)
        if endpoint is not None:
            session.expunge(endpoint)
        session.commit()
        return head, endpoint


def _finish(delivery: WebhookDelivery, *, status: DeliveryStatus, reason: str | None) -> None:
    delivery.status = status.value
    delivery.next_attempt_at = None
    delivery.lease_until = None
    if reason:
        delivery.last_error = reason


def disable_endpoint(session: Session, *, endpoint_id: uuid.UUID, reason: str) -> None:
    """Stop an endpoint: it and its pending deliveries end (the deliveries as dead)."""
    session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id)
        .values(status=EndpointStatus.DISABLED.value, disabled_reason=reason, updated_at=utcnow())
    )
    session.execute(
        update(D)
        .where(D.endpoint_id == endpoint_id, D.status == DeliveryStatus.PENDING.value)
        .values(
            status=DeliveryStatus.DEAD.value,
            next_attempt_at=None,
            lease_until=None,
            last_error="endpoint disabled",
        )
    )


def _record(session: Session, *, delivery_id: int, attempt: Attempt, now: datetime) -> D:
    delivery = session.get(D, delivery_id, with_for_update=True, populate_existing=True)
    assert delivery is not None
    delivery.attempts += 1
    delivery.round_attempts += 1
    delivery.first_attempt_at = delivery.first_attempt_at or now
    delivery.last_attempt_at = now
    delivery.last_status_code = attempt.status_code
    delivery.last_error = attempt.error
    delivery.lease_until = None
    entry = {
        "at": now.isoformat(),
        "status_code": attempt.status_code,
        "error": attempt.error,
        "duration_ms": attempt.duration_ms,
    }
    delivery.attempt_log = [*delivery.attempt_log, entry][-ATTEMPT_LOG_LIMIT:]
    released = 0
    if attempt.succeeded:
        _finish(delivery, status=DeliveryStatus.SUCCEEDED, reason=None)
        delivery.succeeded_at = now
        session.flush()
        released = release_destination(session, delivery=delivery, now=now)
    elif attempt.status_code == 410:
        _finish(delivery, status=DeliveryStatus.DEAD, reason="HTTP 410: the receiver is gone")
        if delivery.endpoint_id is not None:
            session.flush()
            disable_endpoint(session, endpoint_id=delivery.endpoint_id, reason="answered 410 Gone")
            log.info("webhook_endpoint_disabled", endpoint_id=str(delivery.endpoint_id))
    else:
        delivery.next_attempt_at = retry_at(
            first_attempt_at=delivery.first_attempt_at,
            attempts=delivery.round_attempts,
            now=now,
            retry_after=attempt.retry_after,
        )
        if delivery.next_attempt_at is None:
            _finish(delivery, status=DeliveryStatus.DEAD, reason=None)
    session.commit()
    log.info(
        "webhook_attempt",
        delivery_id=delivery.id,
        endpoint_id=str(delivery.endpoint_id) if delivery.endpoint_id else None,
        target=delivery.target,
        attempt=delivery.attempts,
        status_code=attempt.status_code,
        outcome=delivery.status,
    )
    if released:
        log.info(
            "webhook_backoff_ended",
            endpoint_id=str(delivery.endpoint_id) if delivery.endpoint_id else None,
            target=delivery.target,
            released=released,
        )
    return delivery


def _ring_later(delivery: WebhookDelivery) -> None:
    """A doorbell with a countdown for a retry due soon; the sweep covers the rest."""
    if delivery.status != DeliveryStatus.PENDING.value or delivery.next_attempt_at is None:
        return
    wait = delivery.next_attempt_at - utcnow()
    if wait > ETA_DOORBELL_LIMIT:
        return
    enqueue(DELIVER_WEBHOOKS, args=[delivery.id], countdown=max(wait.total_seconds(), 0.01))


def deliver_stream(
    session: Session,
    *,
    delivery_id: int,
    now: datetime | None = None,
    http: httpx.Client | None = None,
) -> int:
    """Send the due deliveries of `delivery_id`'s stream in order, stopping at the first one
    that is not due or fails. Returns the number of attempts made."""
    stream = session.scalar(select(D.stream).where(D.id == delivery_id))
    session.commit()
    if stream is None:
        return 0
    client = http or httpx.Client(
        timeout=get_settings().webhook_timeout_seconds, follow_redirects=False
    )
    attempts = 0
    try:
        while (claim := _claim_head(session, stream=stream, now=now or utcnow())) is not None:
            head, endpoint = claim
            attempt = send(client, head, endpoint)
            attempts += 1
            recorded = _record(session, delivery_id=head.id, attempt=attempt, now=now or utcnow())
            if not attempt.succeeded:
                if now is None:
                    _ring_later(recorded)
                break
    finally:
        if http is None:
            client.close()
    return attempts


def due_heads(session: Session, *, now: datetime | None = None, limit: int = 500) -> list[int]:
    """The oldest pending delivery of each stream, where it is due and not being sent."""
    moment = now or utcnow()
    earlier = aliased(D)
    rows = session.scalars(
        select(D.id)
        .where(
            D.status == DeliveryStatus.PENDING.value,
            D.next_attempt_at <= moment,
            (D.lease_until.is_(None)) | (D.lease_until < utcnow()),
            ~select(earlier.id)
            .where(
                earlier.stream == D.stream,
                earlier.status == DeliveryStatus.PENDING.value,
                earlier.id < D.id,
            )
            .exists(),
        )
        .order_by(D.next_attempt_at)
        .limit(limit)
    ).all()
    session.commit()
    return list(rows)
