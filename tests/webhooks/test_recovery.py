"""A receiver back from an outage, through the outbox and a real Celery worker (with beat):
every pending delivery arrives within one sweep interval of the receiver's first 2xx, in order
per request and per model, and `redeliver` on a pending delivery sends it now."""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select

from app.core.db import utcnow
from app.webhooks import outbox
from app.webhooks.models import WebhookDelivery
from tests.conftest import wait_for
from tests.webhooks.receiver import Receiver, Reply

SWEEP_SECONDS = float(os.environ["LETHE_WEBHOOK_SWEEP_SECONDS"])


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


def _publish(session, client_id: uuid.UUID, subject: str, number: int) -> int:
    event_type = (
        "model.version_activated" if subject.startswith("model:") else ("erasure_request.completed")
    )
    (delivery,) = outbox.emit(
        session,
        client_id=client_id,
        event_type=event_type,
        data={"subject": subject, "number": number},
        subject=subject,
    )
    session.commit()  # rings the worker
    return delivery.id


def _rows(session, ids: list[int]) -> list[WebhookDelivery]:
    session.expire_all()
    rows = list(session.scalars(select(WebhookDelivery).where(WebhookDelivery.id.in_(ids))))
    session.commit()
    return sorted(rows, key=lambda r: r.id)


def _succeeded(session, ids: list[int]) -> list[WebhookDelivery] | None:
    rows = _rows(session, ids)
    return rows if all(r.status == "succeeded" for r in rows) else None


def _backed_off(session, ids: list[int], *, attempts: int) -> bool:
    later = utcnow() + timedelta(minutes=1)
    return all(r.attempts >= attempts and r.next_attempt_at > later for r in _rows(session, ids))


def _first_success(receiver: Receiver, path: str) -> dict[str, float]:
    """Each message's first 2xx: webhook-id -> arrival time (monotonic)."""
    found: dict[str, float] = {}
    for item in receiver.at(path):
        if item.status == 200:
            found.setdefault(item.headers["webhook-id"], item.at)
    return found


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_every_pending_delivery_arrives_within_a_sweep_of_the_first_2xx(
    api, make_key, session, celery_worker, receiver: Receiver
):
    endpoint, headers, client_id = _endpoint(api, make_key, receiver.url("/hook"))
    receiver.fail("/hook", Reply(500))
    subjects = [f"erasure_request:{uuid.uuid4()}" for _ in range(3)] + [f"model:{uuid.uuid4()}"]
    streams = {s: [_publish(session, client_id, s, n) for n in range(3)] for s in subjects}
    heads = [ids[0] for ids in streams.values()]
    held = [i for ids in streams.values() for i in ids[1:]]
    # Each stream's first event fails twice (at once, then 5 s later) and backs off 5 minutes.
    wait_for(lambda: _backed_off(session, heads, attempts=2), timeout=60)

    listed = {
        d["id"]: d
        for d in api.get(
            f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", headers=headers
        ).json()["items"]
    }
    for ids in streams.values():
        head = listed[ids[0]]
        assert (head["attempts"], head["waiting_on"], head["last_status_code"]) == (2, None, 500)
        assert _at(head["next_attempt_at"]) > utcnow() + timedelta(minutes=4)
        for waiting in ids[1:]:
            item = listed[waiting]
            assert (item["status"], item["attempts"], item["next_attempt_at"]) == (
                "pending",
                0,
                None,
            )
            assert item["waiting_on"]["delivery_id"] == ids[0]
            assert item["waiting_on"]["next_attempt_at"] == head["next_attempt_at"]

    # The receiver is healthy again; a new event is the first to get a 2xx.
    receiver.recover("/hook")
    news = _publish(session, client_id, f"erasure_request:{uuid.uuid4()}", 0)
    everything = [*heads, *held, news]
    wait_for(lambda: len(_first_success(receiver, "/hook")) == len(everything), timeout=60)

    arrived = _first_success(receiver, "/hook")
    first_2xx = min(arrived.values())
    recovery = max(arrived.values()) - first_2xx
    print(f"recovery: every pending delivery within {recovery:.2f} s of the first 2xx")
    assert recovery <= SWEEP_SECONDS
    # The receiver has them all; the worker records the last answers a moment later.
    rows = wait_for(lambda: _succeeded(session, everything))
    attempts = {r.id: r.attempts for r in rows}
    assert [attempts[i] for i in heads] == [3] * len(heads)
    assert [attempts[i] for i in held] == [1] * len(held)

    # In order per request and per model: each stream's first 2xx come in publishing order.
    by_id = {r.id: r.message_id for r in rows}
    for ids in streams.values():
        times = [arrived[by_id[i]] for i in ids]
        assert times == sorted(times)
    bodies = [json.loads(i.body) for i in receiver.at("/hook") if i.status == 200]
    for subject in subjects:
        numbers = [b["data"]["number"] for b in bodies if b["data"]["subject"] == subject]
        assert numbers == [0, 1, 2]


def test_redeliver_sends_a_pending_delivery_now(
    api, make_key, session, celery_worker, receiver: Receiver
):
    endpoint, headers, client_id = _endpoint(api, make_key, receiver.url("/later"))
    # Down, and asking for an hour's pause: nothing would be retried for an hour.
    receiver.fail("/later", Reply(503, headers=(("Retry-After", "3600"),)))
    a, b = f"erasure_request:{uuid.uuid4()}", f"model:{uuid.uuid4()}"
    a1, a2 = _publish(session, client_id, a, 0), _publish(session, client_id, a, 1)
    b1 = _publish(session, client_id, b, 0)
    wait_for(lambda: _backed_off(session, [a1, b1], attempts=1), timeout=60)
    receiver.recover("/later")

    # The held second event of `a`: sent now, right after the first, which is sent now too.
    url = f"/v1/webhook-endpoints/{endpoint['id']}/deliveries/{a2}/redeliver"
    redelivered = api.post(url, headers=headers)
    assert redelivered.status_code == 202, redelivered.text
    body = redelivered.json()
    assert (body["status"], body["attempts"], body["next_attempt_at"]) == ("pending", 0, None)
    assert body["waiting_on"]["delivery_id"] == a1
    assert _at(body["waiting_on"]["next_attempt_at"]) <= utcnow()

    wait_for(lambda: len(_first_success(receiver, "/later")) == 3, timeout=SWEEP_SECONDS + 30)
    arrived = _first_success(receiver, "/later")
    rows = {r.id: r for r in wait_for(lambda: _succeeded(session, [a1, a2, b1]))}
    assert arrived[rows[a1].message_id] < arrived[rows[a2].message_id]
    assert max(arrived.values()) - min(arrived.values()) <= SWEEP_SECONDS
    assert [rows[i].attempts for i in (a1, a2, b1)] == [2, 1, 2]

    # The same route on the other listing, for a delivery without a pending peer.
    again = api.post(f"/v1/webhook-deliveries/{a1}/redeliver", headers=headers)
    assert again.status_code == 202
    assert (again.json()["status"], again.json()["attempts"]) == ("pending", 2)
    wait_for(lambda: _rows(session, [a1])[0].status == "succeeded", timeout=30)
    assert _rows(session, [a1])[0].attempts == 3
