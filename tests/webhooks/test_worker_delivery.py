"""End to end: transitions reach a real receiver through the outbox and a real Celery worker."""

from __future__ import annotations

import base64
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from standardwebhooks import Webhook

from app.core.broker import SWEEP_WEBHOOKS, enqueue
from app.webhooks import outbox
from tests.conftest import wait_for
from tests.webhooks.receiver import Receiver


def _client(make_key, *, requires_approval: bool = False):
    from app.core.auth import authenticate
    from app.core.db import get_sessionmaker

    key = make_key(["requests:write", "requests:read"], requires_approval=requires_approval)
    with get_sessionmaker()() as s:
        client_id = authenticate(s, key=key).id
    return {"Authorization": f"Bearer {key}"}, client_id


def _first_of_each_message(received) -> list:
    seen, unique = set(), []
    for item in received:
        if item.headers["webhook-id"] not in seen:
            seen.add(item.headers["webhook-id"])
            unique.append(item)
    return unique


def _verify_v1a(public_key: str, item) -> dict:
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key.removeprefix("whpk_")))
    headers = item.headers
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + item.body
    version, signature = headers["webhook-signature"].split(",", 1)
    assert version == "v1a"
    key.verify(base64.b64decode(signature), signed)  # raises InvalidSignature
    return json.loads(item.body)


def test_every_transition_arrives_signed_and_in_order(
    api, make_key, admin_headers, celery_worker, receiver: Receiver
):
    headers, _ = _client(make_key, requires_approval=True)
    endpoint = api.post(
        "/v1/webhook-endpoints",
        json={"url": receiver.url("/hook"), "events": ["*"]},
        headers=headers,
    ).json()
    submitted = api.post(
        "/v1/erasure-requests",
        json={
            "identities": [{"type": "email", "value": "webhooks-e2e@example.com"}],
            "callback_url": receiver.url("/callback"),
        },
        headers=headers,
    ).json()
    approved = api.post(f"/v1/erasure-requests/{submitted['id']}/approve", headers=admin_headers)
    assert approved.status_code == 200
    expected = [
        "erasure_request.received",
        "erasure_request.pending_approval",
        "erasure_request.approved",
        "erasure_request.planning",
        "erasure_request.completed",
    ]
    wait_for(lambda: len(_first_of_each_message(receiver.at("/hook"))) >= len(expected))
    wait_for(lambda: len(_first_of_each_message(receiver.at("/callback"))) >= len(expected))

    verifier = Webhook(endpoint["secret"])
    for item in receiver.at("/hook"):
        verifier.verify(item.body, item.headers)  # raises on a bad signature
    hooks = [json.loads(i.body) for i in _first_of_each_message(receiver.at("/hook"))]
    assert [h["type"] for h in hooks] == expected
    assert [h["data"]["status"] for h in hooks] == [t.split(".")[1] for t in expected]
    assert hooks[0]["data"]["previous_status"] is None
    assert hooks[2]["data"]["previous_status"] == "pending_approval"
    assert all(h["data"]["id"] == submitted["id"] for h in hooks)
    assert "webhooks-e2e@example.com" not in b"".join(i.body for i in receiver.received).decode()

    public_key = api.get("/v1/webhook-signing-key").json()["public_key"]
    callbacks = [
        _verify_v1a(public_key, i) for i in _first_of_each_message(receiver.at("/callback"))
    ]
    assert [c["type"] for c in callbacks] == expected
    # One message, one webhook-id, whichever URL it went to.
    assert [i.headers["webhook-id"] for i in _first_of_each_message(receiver.at("/hook"))] == [
        i.headers["webhook-id"] for i in _first_of_each_message(receiver.at("/callback"))
    ]

    def all_succeeded() -> list | None:
        page = api.get(f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", headers=headers)
        items = page.json()["items"]
        return items if all(d["status"] == "succeeded" for d in items) else None

    deliveries = wait_for(all_succeeded)
    assert len(deliveries) == len(expected)
    assert deliveries[0]["attempts"] == 1
    everything = api.get(
        f"/v1/webhook-deliveries?erasure_request_id={submitted['id']}", headers=headers
    ).json()["items"]
    assert {d["target"] for d in everything} == {"endpoint", "callback"}


def test_the_sweep_finds_rows_whose_doorbell_never_rang(
    api, make_key, session, celery_worker, receiver: Receiver
):
    headers, client_id = _client(make_key)
    endpoint = api.post(
        "/v1/webhook-endpoints",
        json={"url": receiver.url("/models"), "events": ["model.version_activated"]},
        headers=headers,
    ).json()
    queued = outbox.emit(
        session,
        client_id=client_id,
        event_type="model.version_activated",
        data={"model_id": "m-1", "version": 3},
        subject="model:m-1",
        ring=False,  # as if Redis had lost the message
    )
    session.commit()
    assert len(queued) == 1
    enqueue(SWEEP_WEBHOOKS, args=[])
    wait_for(lambda: receiver.at("/models"))
    item = receiver.at("/models")[0]
    message = Webhook(endpoint["secret"]).verify(item.body, item.headers)
    assert message["type"] == "model.version_activated"
    assert message["data"] == {"model_id": "m-1", "version": 3}
    assert set(message) == {"type", "timestamp", "data"}
