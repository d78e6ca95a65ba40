"""Webhook delivery tasks. The outbox row is the truth: a task that runs twice, or late, or
never (the beat sweep covers it), sends nothing twice and loses nothing."""

from __future__ import annotations

import structlog

from app.core.broker import DELIVER_WEBHOOKS, SWEEP_WEBHOOKS, enqueue
from app.core.db import get_sessionmaker
from app.webhooks.delivery import deliver_stream, due_heads
from workers.celery_app import celery_app

log = structlog.get_logger(__name__)


@celery_app.task(name=DELIVER_WEBHOOKS)
def deliver_webhooks(delivery_id: int) -> int:
    """Send the due deliveries of this delivery's stream, in order."""
    with get_sessionmaker()() as session:
        return deliver_stream(session, delivery_id=delivery_id)


@celery_app.task(name=SWEEP_WEBHOOKS)
def sweep_webhooks() -> int:
    """Ring the doorbell for every stream whose oldest pending delivery is due."""
    with get_sessionmaker()() as session:
        heads = due_heads(session)
    for delivery_id in heads:
        enqueue(DELIVER_WEBHOOKS, args=[delivery_id])
    if heads:
        log.info("webhook_sweep", due_streams=len(heads))
    return len(heads)
