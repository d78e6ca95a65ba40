"""What a pending delivery waits for, and ending back-offs early.

A stream's head, its oldest pending delivery, is the only one attempted; the stream's later
deliveries wait for it to succeed or be given up (`dead`). When a destination answers 2xx, it
is healthy again: its other deliveries waiting out a back-off are made due at once and their
streams rung, so a receiver back from an outage gets its backlog promptly (and, should a
doorbell be lost, the beat sweep finds them due).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.webhooks.models import DeliveryStatus, WebhookDelivery
from app.webhooks.queue import ring_stream_after_commit

D = WebhookDelivery
PENDING = DeliveryStatus.PENDING.value
# Deliveries released by one success; a later success (or redelivery) releases the rest.
RELEASE_LIMIT = 5000


def heads(session: Session, *, streams: Collection[str]) -> dict[str, WebhookDelivery]:
    """The oldest pending delivery of each of `streams` that has one."""
    if not streams:
        return {}
    first = (
        select(func.min(D.id).label("id"))
        .where(D.status == PENDING, D.stream.in_(list(streams)))
        .group_by(D.stream)
        .subquery()
    )
    return {row.stream: row for row in session.scalars(select(D).join(first, D.id == first.c.id))}


def waiting_on(
    session: Session, *, deliveries: Sequence[WebhookDelivery]
) -> dict[int, WebhookDelivery]:
    """For each pending delivery held behind an earlier one of its stream: that one."""
    pending = [d for d in deliveries if d.status == PENDING]
    found = heads(session, streams={d.stream for d in pending})
    return {
        d.id: found[d.stream] for d in pending if d.stream in found and found[d.stream].id < d.id
    }


def _make_due(session: Session, *, rows: Sequence[tuple[int, str]], now: datetime) -> int:
    if not rows:
        return 0
    session.execute(
        update(D)
        .where(D.id.in_([delivery_id for delivery_id, _ in rows]))
        .values(next_attempt_at=now)
        .execution_options(synchronize_session=False)
    )
    for delivery_id, stream in rows:
        ring_stream_after_commit(session, delivery_id=delivery_id, stream=stream)
    return len(rows)


def release_destination(session: Session, *, delivery: WebhookDelivery, now: datetime) -> int:
    """`delivery`'s destination answered 2xx: make its other pending deliveries that wait out a
    back-off due `now`, and ring their streams once the caller commits. Rows another worker
    holds are skipped: it is recording their outcome. Returns how many were released."""
    query = select(D.id, D.stream).where(
        D.status == PENDING, D.next_attempt_at > now, D.id != delivery.id
    )
    if delivery.endpoint_id is not None:
        query = query.where(D.endpoint_id == delivery.endpoint_id)
    else:
        query = query.where(
            D.client_id == delivery.client_id, D.target == delivery.target, D.url == delivery.url
        )
    query = query.order_by(D.id).limit(RELEASE_LIMIT).with_for_update(skip_locked=True)
    rows = [(row.id, row.stream) for row in session.execute(query)]
    return _make_due(session, rows=rows, now=now)


def expedite(session: Session, *, delivery: WebhookDelivery, now: datetime) -> None:
    """Send `delivery` now: it and the earlier pending deliveries of its stream, which it
    waits for, are due `now` (the stream keeps its order); its stream is rung at commit."""
    earlier = session.execute(
        select(D.id, D.stream)
        .where(
            D.stream == delivery.stream,
            D.status == PENDING,
            D.id < delivery.id,
            D.next_attempt_at > now,
        )
        .with_for_update(skip_locked=True)  # a row held elsewhere is being sent or released
    )
    _make_due(session, rows=[(row.id, row.stream) for row in earlier], now=now)
    ring_stream_after_commit(session, delivery_id=delivery.id, stream=delivery.stream)
