"""Erasure intake through the HTTP API, planned by the real Celery worker."""

from __future__ import annotations

import hashlib
from datetime import datetime

from dateutil.relativedelta import relativedelta

from tests.conftest import wait_for


def _status(api, headers, request_id):
    return api.get(f"/v1/erasure-requests/{request_id}", headers=headers).json()


def _add_dataset_with_records(api, headers, records):
    dataset = api.post("/v1/datasets", json={"name": "purchases"}, headers=headers).json()
    response = api.post(
        f"/v1/datasets/{dataset['id']}/records", json={"records": records}, headers=headers
    )
    assert response.status_code == 201, response.text
    return dataset


def _record(key: str, email: str, split: str = "train") -> dict:
    return {
        "key": key,
        "identities": [{"type": "email", "value": email}],
        "features": [0.5, 1.0, 0.0],
        "label": 1,
        "split": split,
    }


def test_request_without_training_data_completes(api, portal_headers, celery_worker):
    response = api.post(
        "/v1/erasure-requests",
        json={"identities": [{"type": "email", "value": "nobody-here@example.org"}]},
        headers=portal_headers,
    )
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "received"
    received = datetime.fromisoformat(body["received_at"])
    assert datetime.fromisoformat(body["due_at"]) == received + relativedelta(months=1)
    assert "nobody-here" not in response.text

    final = wait_for(
        lambda: (s := _status(api, portal_headers, body["id"]))["status"] == "completed" and s
    )
    assert final["status_reason"] == "no training data found"
    assert final["plan"]["records_found"] == 0
    # The response links a certificate, and there is one: it states that nothing was found.
    certificate = api.get(final["links"]["certificate"], headers=portal_headers)
    assert certificate.status_code == 200, certificate.text
    claims = certificate.json()["claims"]
    assert claims["outcome"] == "no_training_data_found"
    assert (claims["records_erased"], claims["models"]) == (0, [])


def test_records_without_a_model_are_purged(api, portal_headers, celery_worker):
    records = [_record(f"alice-{i}", " Alice@Example.COM ") for i in range(3)]
    records += [
        _record("bob-1", "bob@example.com"),
        _record("alice-h", "alice@example.com", "holdout"),
    ]
    dataset = _add_dataset_with_records(api, portal_headers, records)

    response = api.post(
        "/v1/erasure-requests",
        json={"identities": [{"type": "email", "value": "alice@example.com"}], "reference": "T-1"},
        headers=portal_headers,
    )
    request_id = response.json()["id"]
    final = wait_for(
        lambda: (s := _status(api, portal_headers, request_id))["status"] == "completed" and s
    )
    assert final["plan"]["records_found"] == 4
    assert final["plan"]["models_affected"] == []
    assert final["plan"]["subjects_found"] == 1
    assert final["plan"]["datasets"] == [{"dataset_id": dataset["id"], "records": 4}]

    events = api.get(f"/v1/erasure-requests/{request_id}/events", headers=portal_headers).json()
    assert [e["action"] for e in events] == [
        "erasure_request.received",
        "erasure_request.planning",
        "erasure_request.planned",
        "erasure_request.data_purged",
        "erasure_request.storage_scrubbed",
        "erasure_request.completed",
    ]
    assert events[-3]["data"] == {
        "records_deleted": 4,
        "subjects_deleted": 1,
        "identities_suppressed": 1,
    }
    assert "alice" not in str(events).lower()
    shown = api.get(f"/v1/datasets/{dataset['id']}", headers=portal_headers).json()
    assert shown["record_counts"] == {"train": 1}  # only bob's record is left


def test_prehashed_identity_resolves_to_the_same_subject(api, portal_headers, celery_worker):
    _add_dataset_with_records(api, portal_headers, [_record("carol-1", "carol@example.com")])
    digest = hashlib.sha256(b"carol@example.com").hexdigest()
    response = api.post(
        "/v1/erasure-requests",
        json={"identities": [{"type": "email", "value": digest.upper(), "format": "sha256"}]},
        headers=portal_headers,
    )
    request_id = response.json()["id"]
    final = wait_for(
        lambda: (s := _status(api, portal_headers, request_id))["status"] == "completed" and s
    )
    assert final["plan"]["records_found"] == 1


def test_list_filters_and_paginates(api, make_key, celery_worker):
    headers = {"Authorization": f"Bearer {make_key(['requests:write', 'requests:read'])}"}
    ids = []
    for n in range(5):
        r = api.post(
            "/v1/erasure-requests",
            json={"identities": [{"type": "user_id", "value": f"list-user-{n}"}]},
            headers=headers,
        )
        ids.append(r.json()["id"])
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = api.get("/v1/erasure-requests", params=params, headers=headers).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))

    wait_for(
        lambda: all(_status(api, headers, i)["status"] == "completed" for i in ids), timeout=60
    )
    completed = api.get("/v1/erasure-requests", params={"status": "completed"}, headers=headers)
    assert {i["id"] for i in completed.json()["items"]} == set(ids)
    overdue = api.get("/v1/erasure-requests", params={"overdue": "true"}, headers=headers)
    assert overdue.json()["items"] == []
    bad = api.get("/v1/erasure-requests", params={"status": "bogus"}, headers=headers)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["parameter"] == "status"


def test_portal_sees_only_its_own_requests(api, make_key, admin_headers):
    mine = {"Authorization": f"Bearer {make_key(['requests:write', 'requests:read'])}"}
    theirs = {"Authorization": f"Bearer {make_key(['requests:write', 'requests:read'])}"}
    created = api.post(
        "/v1/erasure-requests",
        json={"identities": [{"type": "user_id", "value": "private-1"}]},
        headers=mine,
    ).json()
    other = api.get(f"/v1/erasure-requests/{created['id']}", headers=theirs)
    assert other.status_code == 404
    assert other.headers["content-type"] == "application/problem+json"
    listed = api.get("/v1/erasure-requests", headers=theirs).json()["items"]
    assert created["id"] not in {i["id"] for i in listed}
    assert (
        api.get(f"/v1/erasure-requests/{created['id']}", headers=admin_headers).status_code == 200
    )
