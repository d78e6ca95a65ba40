"""Ordering per erasure request and per model on `ordered` endpoints, none on `independent`
ones, and what delivery listings say about a delivery that waits. Driven by an injected clock a
year ahead (as in test_retries), so the worker's beat sweep never touches these deliveries."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

from app.core.db import utcnow
from app.webhooks import outbox
from app.webhooks.delivery import RETRY_OFFSETS, deliver_stream
from app.webhooks.models import WebhookDelivery
from tests.webhooks.receiver import Receiver, Reply

REQUEST_EVENT = "erasure_request.completed"
MODEL_EVENT = "model.version_activated"


def _endpoint(api, make_key, url: str, **extra: str) -> tuple[dict, dict, uuid.UUID]:
    from app.core.auth import authenticate
    from app.core.db import get_sessionmaker

    key = make_key(["requests:write", "requests:read"])
    headers = {"Authorization": f"Bearer {key}"}
    with get_sessionmaker()() as s:
        client_id = authenticate(s, key=key).id
    body = {"url": url, "events": ["*"], **extra}
    created = api.post("/v1/webhook-endpoints", json=body, headers=headers)
    assert created.status_code == 201, created.text
    return created.json(), headers, client_id


def _queue(session, client_id: uuid.UUID, subject: str, *, now: datetime) -> int:
    """One event about `subject` (`erasure_request:<id>` or `model:<id>`), due `now`."""
    event_type = MODEL_EVENT if subject.startswith("model:") else REQUEST_EVENT
    (delivery,) = outbox.emit(
        session,
        client_id=client_id,
        event_type=event_type,
        data={"subject": subject},
        subject=subject,
        ring=False,
    )
    delivery.next_attempt_at = now
    session.commit()
    return delivery.id


def _row(session, delivery_id: int) -> WebhookDelivery:
    session.expire_all()
    row = session.get(WebhookDelivery, delivery_id)
    session.commit()
    return row


def _listed(api, headers: dict, endpoint: dict) -> dict[int, dict]:
    page = api.get(f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", headers=headers)
    assert page.status_code == 200, page.text
    return {d["id"]: d for d in page.json()["items"]}


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _sent(receiver: Receiver, path: str) -> list[tuple[str, int]]:
    """(subject, status answered) of each POST, in arrival order."""
    return [(json.loads(r.body)["data"]["subject"], r.status) for r in receiver.at(path)]


def _subjects() -> tuple[str, str, str, str]:
    a, b, m, n = (uuid.uuid4() for _ in range(4))
    return f"erasure_request:{a}", f"erasure_request:{b}", f"model:{m}", f"model:{n}"


def test_ordered_waits_only_for_the_same_request_or_model(
    api, make_key, session, receiver: Receiver
):
    endpoint, headers, client_id = _endpoint(api, make_key, receiver.url("/ordered"))
    assert endpoint["ordering"] == "ordered"
    now = utcnow() + timedelta(days=365)
    a, b, m, n = _subjects()
    a1, a2 = _queue(session, client_id, a, now=now), _queue(session, client_id, a, now=now)
    m1, m2 = _queue(session, client_id, m, now=now), _queue(session, client_id, m, now=now)
    receiver.reply("/ordered", Reply(500), Reply(500))
    assert deliver_stream(session, delivery_id=a1, now=now) == 1
    assert deliver_stream(session, delivery_id=m1, now=now) == 1
    # The second event of each request and of each model waits for the first.
    assert deliver_stream(session, delivery_id=a2, now=now) == 0
    assert deliver_stream(session, delivery_id=m2, now=now) == 0

    listed = _listed(api, headers, endpoint)
    for first, second in ((a1, a2), (m1, m2)):
        head, held = listed[first], listed[second]
        assert (head["status"], head["attempts"], head["waiting_on"]) == ("pending", 1, None)
        assert _at(head["next_attempt_at"]) >= now + RETRY_OFFSETS[0]
        assert (held["status"], held["attempts"], held["next_attempt_at"]) == ("pending", 0, None)
        assert held["waiting_on"] == {
            "delivery_id": first,
            "event_type": head["event_type"],
            "attempts": 1,
            "next_attempt_at": head["next_attempt_at"],
        }

    # Another request and another model wait for nothing; their 2xx shows the receiver is
    # back, which ends the back-off of the first events at once.
    b1, n1 = _queue(session, client_id, b, now=now), _queue(session, client_id, n, now=now)
    assert deliver_stream(session, delivery_id=b1, now=now) == 1
    assert _row(session, a1).next_attempt_at == now
    assert _row(session, m1).next_attempt_at == now
    assert deliver_stream(session, delivery_id=n1, now=now) == 1
    assert deliver_stream(session, delivery_id=a2, now=now) == 2
    assert deliver_stream(session, delivery_id=m2, now=now) == 2
    assert _sent(receiver, "/ordered") == [
        (a, 500),
        (m, 500),
        (b, 200),
        (n, 200),
        (a, 200),
        (a, 200),
        (m, 200),
        (m, 200),
    ]
    assert [_row(session, d).attempts for d in (a1, a2, m1, m2)] == [2, 1, 2, 1]
    listed = _listed(api, headers, endpoint)
    assert all(d["status"] == "succeeded" and d["waiting_on"] is None for d in listed.values())


def test_independent_deliveries_wait_for_nothing(api, make_key, session, receiver: Receiver):
    endpoint, headers, client_id = _endpoint(
        api, make_key, receiver.url("/independent"), ordering="independent"
    )
    assert endpoint["ordering"] == "independent"
    now = utcnow() + timedelta(days=365)
    a, _, m, _ = _subjects()
    a1, a2 = _queue(session, client_id, a, now=now), _queue(session, client_id, a, now=now)
    m1, m2 = _queue(session, client_id, m, now=now), _queue(session, client_id, m, now=now)
    receiver.reply("/independent", Reply(500), Reply(500))
    assert deliver_stream(session, delivery_id=a1, now=now) == 1
    assert deliver_stream(session, delivery_id=m1, now=now) == 1
    listed = _listed(api, headers, endpoint)
    assert listed[a2]["waiting_on"] is None and _at(listed[a2]["next_attempt_at"]) == now
    # Sent while the earlier event of the same request is still being retried.
    assert deliver_stream(session, delivery_id=a2, now=now) == 1
    assert deliver_stream(session, delivery_id=m2, now=now) == 1
    assert _row(session, a1).status == "pending"
    assert deliver_stream(session, delivery_id=a1, now=now) == 1  # released by the 2xx
    assert deliver_stream(session, delivery_id=m1, now=now) == 1
    assert _sent(receiver, "/independent") == [
        (a, 500),
        (m, 500),
        (a, 200),
        (m, 200),
        (a, 200),
        (m, 200),
    ]


def test_the_ordering_can_be_changed(api, make_key, session, receiver: Receiver):
    endpoint, headers, client_id = _endpoint(api, make_key, receiver.url("/switch"))
    url = f"/v1/webhook-endpoints/{endpoint['id']}"
    now = utcnow() + timedelta(days=365)
    a, b, _, _ = _subjects()
    a1, a2 = _queue(session, client_id, a, now=now), _queue(session, client_id, a, now=now)
    receiver.reply("/switch", Reply(500))
    assert deliver_stream(session, delivery_id=a1, now=now) == 1
    assert _listed(api, headers, endpoint)[a2]["waiting_on"]["delivery_id"] == a1

    changed = api.patch(url, json={"ordering": "independent"}, headers=headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["ordering"] == "independent"
    assert api.get(url, headers=headers).json()["ordering"] == "independent"
    # A pending delivery stops waiting at once.
    assert _listed(api, headers, endpoint)[a2]["waiting_on"] is None
    assert deliver_stream(session, delivery_id=a2, now=now) == 1
    assert _row(session, a2).status == "succeeded"

    back = api.patch(url, json={"ordering": "ordered"}, headers=headers)
    assert back.json()["ordering"] == "ordered"
    receiver.reply("/switch", Reply(500))
    b1, b2 = _queue(session, client_id, b, now=now), _queue(session, client_id, b, now=now)
    assert deliver_stream(session, delivery_id=b1, now=now) == 1
    assert deliver_stream(session, delivery_id=b2, now=now) == 0

    refused = api.patch(url, json={"ordering": "random"}, headers=headers)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["pointer"] == "#/ordering"
    assert api.patch(url, json={}, headers=headers).status_code == 422
    nobody = f"/v1/webhook-endpoints/{uuid.uuid4()}"
    assert api.patch(nobody, json={"ordering": "ordered"}, headers=headers).status_code == 404
