"""Rotating an endpoint's secret: during the overlap both secrets verify, then only the new."""

from __future__ import annotations

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from app.webhooks.delivery import deliver_stream
from tests.webhooks.receiver import Receiver
from tests.webhooks.test_retries import _endpoint, _queue, clock


def test_both_signatures_verify_during_the_overlap(api, make_key, session, receiver: Receiver):
    endpoint, headers, client_id = _endpoint(api, make_key, receiver.url("/rotating"))
    old_secret = endpoint["secret"]
    rotated = api.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret",
        json={"overlap_hours": 24},
        headers=headers,
    )
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret != old_secret
    assert rotated.json()["previous_secret_expires_at"] is not None

    now = clock()
    deliver_stream(session, delivery_id=_queue(session, client_id, due=now), now=now)
    (hit,) = receiver.at("/rotating")
    assert len(hit.headers["webhook-signature"].split(" ")) == 2
    Webhook(new_secret).verify(hit.body, hit.headers)
    Webhook(old_secret).verify(hit.body, hit.headers)

    ended = api.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret",
        json={"overlap_hours": 0},
        headers=headers,
    ).json()
    now = clock()
    deliver_stream(session, delivery_id=_queue(session, client_id, due=now), now=now)
    latest = receiver.at("/rotating")[-1]
    assert len(latest.headers["webhook-signature"].split(" ")) == 1
    Webhook(ended["secret"]).verify(latest.body, latest.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret).verify(latest.body, latest.headers)


def test_rotation_without_a_body_uses_a_day_of_overlap(api, make_key, receiver: Receiver):
    endpoint, headers, _ = _endpoint(api, make_key, receiver.url("/rotating"))
    rotated = api.post(f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", headers=headers)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["previous_secret_expires_at"] is not None
    too_long = api.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret",
        json={"overlap_hours": 10_000},
        headers=headers,
    )
    assert too_long.status_code == 422
    assert too_long.json()["errors"][0]["pointer"] == "#/overlap_hours"
