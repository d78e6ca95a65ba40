"""The outbox row is written in the transition's own transaction, or not at all."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from app.erasure import lifecycle
from app.erasure.models import ErasureRequest
from app.webhooks import outbox
from app.webhooks.models import WebhookDelivery


def _count(session, request_id) -> int:
    return session.scalar(
        select(func.count())
        .select_from(WebhookDelivery)
        .where(WebhookDelivery.erasure_request_id == request_id)
    )


def test_a_rolled_back_transition_leaves_no_delivery(api, make_key, session, receiver):
    key = make_key(["requests:write", "requests:read"], requires_approval=True)
    headers = {"Authorization": f"Bearer {key}"}
    hook = {"url": receiver.url("/tx"), "events": ["*"]}
    assert api.post("/v1/webhook-endpoints", json=hook, headers=headers).status_code == 201
    created = api.post(
        "/v1/erasure-requests",
        json={"identities": [{"type": "user_id", "value": "outbox-tx"}]},
        headers=headers,
    ).json()
    request_id = uuid.UUID(created["id"])
    session.rollback()
    assert _count(session, request_id) == 2  # received, pending_approval

    request = session.get(ErasureRequest, request_id)
    lifecycle.cancel(session, request=request, actor="test")
    assert _count(session, request_id) == 3
    session.rollback()
    assert _count(session, request_id) == 2


def test_emit_refuses_unknown_event_types(session):
    with pytest.raises(ValueError, match="unknown webhook event type"):
        outbox.emit(session, client_id=uuid.uuid4(), event_type="model.exploded", data={})
