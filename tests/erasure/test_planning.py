"""Planning is scheduled by the erasure service alone, and only for committed work: on intake
when the client needs no approval, on approval, on retry; never for a refused or replayed call."""

from __future__ import annotations

from app.core.broker import PLAN_ERASURE_REQUEST


def _plans(enqueued) -> list[str]:
    return [args[0] for task, args in enqueued if task == PLAN_ERASURE_REQUEST]


def _headers(make_key, *, requires_approval: bool = False) -> dict[str, str]:
    key = make_key(["requests:write", "requests:read"], requires_approval=requires_approval)
    return {"Authorization": f"Bearer {key}"}


def _body(value: str, **extra) -> dict:
    return {"identities": [{"type": "user_id", "value": value}], **extra}


def test_intake_plans_once_even_when_replayed(api, make_key, enqueued):
    headers = _headers(make_key) | {"Idempotency-Key": "plan-once"}
    first = api.post("/v1/erasure-requests", json=_body("plan-1"), headers=headers)
    assert first.status_code == 202
    again = api.post("/v1/erasure-requests", json=_body("plan-1"), headers=headers)
    assert again.json() == first.json()
    assert _plans(enqueued) == [first.json()["id"]]


def test_a_refused_request_plans_nothing(api, make_key, enqueued):
    body = _body("plan-2", callback_url="http://10.1.2.3/hook")
    refused = api.post("/v1/erasure-requests", json=body, headers=_headers(make_key))
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["pointer"] == "#/callback_url"
    assert _plans(enqueued) == []


def test_held_requests_plan_on_approval(api, make_key, admin_headers, enqueued):
    created = api.post(
        "/v1/erasure-requests",
        json=_body("plan-3"),
        headers=_headers(make_key, requires_approval=True),
    ).json()
    assert created["status"] == "pending_approval"
    assert _plans(enqueued) == []
    url = f"/v1/erasure-requests/{created['id']}/approve"
    assert api.post(url, headers=admin_headers).status_code == 200
    assert _plans(enqueued) == [created["id"]]
    assert api.post(url, headers=admin_headers).status_code == 409
    assert _plans(enqueued) == [created["id"]]


def test_opendsr_intake_plans_through_the_same_service(api, make_key, enqueued):
    body = {
        "subject_request_id": "0b8f4f9e-8d3c-4d43-9d0e-3c2f1b7a6e55",
        "regulation": "gdpr",
        "subject_request_type": "erasure",
        "submitted_time": "2026-01-02T03:04:05Z",
        "subject_identities": [{"identity_type": "email", "identity_value": "p@example.com"}],
    }
    headers = _headers(make_key)
    assert api.post("/opendsr/v1/requests", json=body, headers=headers).status_code == 201
    assert api.post("/opendsr/v1/requests", json=body, headers=headers).status_code == 201
    assert len(_plans(enqueued)) == 1
