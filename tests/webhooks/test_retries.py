"""The retry schedule, Retry-After, 410 and dead deliveries, driven by an injected clock."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import httpx
from standardwebhooks import Webhook

from app.core.db import utcnow
from app.webhooks import outbox
from app.webhooks.delivery import JITTER_FRACTION, MAX_ATTEMPTS, RETRY_OFFSETS, deliver_stream
from app.webhooks.models import WebhookDelivery
from tests.webhooks.receiver import Receiver, Reply, closed_port_url


def _endpoint(api, make_key, url: str) -> tuple[dict, dict, uuid.UUID]:
    from app.core.auth import authenticate
    from app.core.db import get_sessionmaker

    key = make_key(["requests:write", "requests:read"])
    headers = {"Authorization": f"Bearer {key}"}
    with get_sessionmaker()() as s:
        client_id = authenticate(s, key=key).id
    created = api.post("/v1/webhook-endpoints", json={"url": url, "events": ["*"]}, headers=headers)
    assert created.status_code == 201, created.text
    return created.json(), headers, client_id


def clock() -> datetime:
    """A test clock a year ahead: the worker's beat sweep runs on the real clock, so it never
    finds these tests' deliveries due and only the test moves them."""
    return utcnow() + timedelta(days=365)


def _queue(session, client_id: uuid.UUID, *, due: datetime) -> int:
    """One model event, due at `due`, with no doorbell."""
    (delivery,) = outbox.emit(
        session,
        client_id=client_id,
        event_type="model.version_activated",
        data={"model_id": str(uuid.uuid4())},
        ring=False,
    )
    delivery.next_attempt_at = due
    session.commit()
    return delivery.id


def _row(session, delivery_id: int) -> WebhookDelivery:
    session.expire_all()
    row = session.get(WebhookDelivery, delivery_id)
    session.commit()
    return row


def test_fourth_try_after_three_500s(api, make_key, session, receiver: Receiver):
    endpoint, _, client_id = _endpoint(api, make_key, receiver.url("/flaky"))
    receiver.reply("/flaky", Reply(500), Reply(500), Reply(500))
    now = clock()
    delivery_id = _queue(session, client_id, due=now)
    for attempt in range(1, 4):
        assert deliver_stream(session, delivery_id=delivery_id, now=now) == 1
        row = _row(session, delivery_id)
        assert (row.status, row.attempts, row.last_status_code) == ("pending", attempt, 500)
        # Not a moment early.
        early = row.next_attempt_at - timedelta(milliseconds=1)
        assert deliver_stream(session, delivery_id=delivery_id, now=early) == 0
        now = row.next_attempt_at
    assert deliver_stream(session, delivery_id=delivery_id, now=now) == 1
    row = _row(session, delivery_id)
    assert (row.status, row.attempts, row.last_status_code) == ("succeeded", 4, 200)
    hits = receiver.at("/flaky")
    assert len(hits) == 4
    assert len({h.headers["webhook-id"] for h in hits}) == 1
    for hit in hits:
        Webhook(endpoint["secret"]).verify(hit.body, hit.headers)


def test_a_down_receiver_is_retried_on_schedule_then_dead(api, make_key, session):
    endpoint, headers, client_id = _endpoint(api, make_key, closed_port_url())
    now = clock()
    delivery_id = _queue(session, client_id, due=now)
    assert deliver_stream(session, delivery_id=delivery_id, now=now) == 1
    first = _row(session, delivery_id).first_attempt_at
    previous = timedelta(0)
    for number, offset in enumerate(RETRY_OFFSETS, start=2):
        row = _row(session, delivery_id)
        assert row.status == "pending"
        assert row.last_error.startswith("connection failed")
        lateness = row.next_attempt_at - (first + offset)
        assert timedelta(0) <= lateness <= (offset - previous) * JITTER_FRACTION
        previous = offset
        assert deliver_stream(session, delivery_id=delivery_id, now=row.next_attempt_at) == 1
        assert _row(session, delivery_id).attempts == number
    row = _row(session, delivery_id)
    assert (row.status, row.attempts, row.next_attempt_at) == ("dead", MAX_ATTEMPTS, None)
    assert MAX_ATTEMPTS == 10

    dead = api.get(
        f"/v1/webhook-endpoints/{endpoint['id']}/deliveries?status=dead", headers=headers
    ).json()["items"]
    assert [d["id"] for d in dead] == [delivery_id]
    assert len(dead[0]["attempt_log"]) == MAX_ATTEMPTS

    again = api.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/deliveries/{delivery_id}/redeliver",
        headers=headers,
    )
    assert again.status_code == 202
    # A fresh round of attempts; the count stays true.
    assert (again.json()["status"], again.json()["attempts"]) == ("pending", MAX_ATTEMPTS)
    assert again.json()["first_attempt_at"] is None
    assert again.json()["message_id"] == dead[0]["message_id"]
    # Pending, it is sent now rather than at its next attempt (a worker may be at it already).
    pending = api.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/deliveries/{delivery_id}/redeliver",
        headers=headers,
    )
    assert pending.status_code == 202
    assert pending.json()["status"] == "pending"
    assert pending.json()["attempts"] >= MAX_ATTEMPTS


def test_retry_after_is_honoured(api, make_key, session, receiver: Receiver):
    _, _, client_id = _endpoint(api, make_key, receiver.url("/busy"))
    receiver.reply("/busy", Reply(503, headers=(("Retry-After", "3600"),)))
    now = clock()
    delivery_id = _queue(session, client_id, due=now)
    deliver_stream(session, delivery_id=delivery_id, now=now)
    row = _row(session, delivery_id)
    assert row.status == "pending"
    assert row.next_attempt_at >= now + timedelta(seconds=3600)


def test_410_disables_the_endpoint(api, make_key, session, receiver: Receiver):
    endpoint, headers, client_id = _endpoint(api, make_key, receiver.url("/gone"))
    receiver.reply("/gone", Reply(410))
    now = clock()
    delivery_id = _queue(session, client_id, due=now)
    waiting_id = _queue(session, client_id, due=now)
    deliver_stream(session, delivery_id=delivery_id, now=now)
    assert _row(session, delivery_id).status == "dead"
    assert _row(session, waiting_id).status == "dead"
    state = api.get(f"/v1/webhook-endpoints/{endpoint['id']}", headers=headers).json()
    assert state["status"] == "disabled"
    assert "410" in state["disabled_reason"]
    assert (
        outbox.emit(
            session, client_id=client_id, event_type="model.version_activated", data={}, ring=False
        )
        == []
    )
    session.rollback()
    refused = api.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/deliveries/{delivery_id}/redeliver",
        headers=headers,
    )
    assert refused.status_code == 409


def test_a_slow_receiver_times_out(api, make_key, session, receiver: Receiver):
    _, _, client_id = _endpoint(api, make_key, receiver.url("/slow"))
    receiver.reply("/slow", Reply(200, delay=2))
    now = clock()
    delivery_id = _queue(session, client_id, due=now)
    with httpx.Client(timeout=0.3) as http:
        deliver_stream(session, delivery_id=delivery_id, now=now, http=http)
    row = _row(session, delivery_id)
    assert (row.status, row.last_error) == ("pending", "timed out")
