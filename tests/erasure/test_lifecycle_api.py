"""Approval policy, denial, cancellation, retries, due-date extension and illegal transitions."""

from __future__ import annotations

from datetime import datetime

from dateutil.relativedelta import relativedelta

from tests.conftest import table_counts, wait_for


def _held_client(make_key) -> dict[str, str]:
    key = make_key(["requests:write", "requests:read"], requires_approval=True)
    return {"Authorization": f"Bearer {key}"}


def _submit(api, headers, value):
    response = api.post(
        "/v1/erasure-requests",
        json={"identities": [{"type": "user_id", "value": value}]},
        headers=headers,
    )
    assert response.status_code == 202, response.text
    return response.json()


def test_policy_holds_requests_for_approval_then_plans(api, make_key, admin_headers, celery_worker):
    held = _held_client(make_key)
    created = _submit(api, held, "approval-1")
    assert created["status"] == "pending_approval"

    refused = api.post(f"/v1/erasure-requests/{created['id']}/approve", headers=held)
    assert refused.status_code == 403
    approved = api.post(f"/v1/erasure-requests/{created['id']}/approve", headers=admin_headers)
    assert approved.status_code == 200
    assert approved.json()["status"] == "approved"
    wait_for(
        lambda: (
            api.get(f"/v1/erasure-requests/{created['id']}", headers=held).json()["status"]
            == "completed"
        )
    )


def test_deny_needs_a_reason_and_is_terminal(api, make_key, admin_headers, session):
    held = _held_client(make_key)
    created = _submit(api, held, "deny-1")
    no_reason = api.post(
        f"/v1/erasure-requests/{created['id']}/deny", json={}, headers=admin_headers
    )
    assert no_reason.status_code == 422
    assert no_reason.json()["errors"][0]["pointer"] == "#/reason"
    denied = api.post(
        f"/v1/erasure-requests/{created['id']}/deny",
        json={"reason": "Art. 17(3)(b): legal obligation to retain"},
        headers=admin_headers,
    )
    assert denied.json()["status"] == "denied"
    before = table_counts(session)
    again = api.post(f"/v1/erasure-requests/{created['id']}/cancel", headers=held)
    assert again.status_code == 409
    assert again.json()["current_status"] == "denied"
    assert "denied" in again.json()["detail"]
    assert table_counts(session) == before


def test_cancel_while_pending_then_illegal_transition(api, make_key, session):
    held = _held_client(make_key)
    created = _submit(api, held, "cancel-1")
    cancelled = api.post(f"/v1/erasure-requests/{created['id']}/cancel", headers=held)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    before = table_counts(session)
    illegal = api.post(f"/v1/erasure-requests/{created['id']}/cancel", headers=held)
    assert illegal.status_code == 409
    assert illegal.headers["content-type"] == "application/problem+json"
    assert illegal.json()["current_status"] == "cancelled"
    assert table_counts(session) == before


def test_retry_only_from_failed(api, portal_headers, admin_headers):
    created = _submit(api, portal_headers, "retry-1")
    response = api.post(f"/v1/erasure-requests/{created['id']}/retry", headers=admin_headers)
    assert response.status_code == 409
    assert response.json()["attempted_status"] == "received"


def test_admin_extends_due_date_by_at_most_two_months(api, make_key, admin_headers):
    held = _held_client(make_key)
    created = _submit(api, held, "extend-1")
    due = datetime.fromisoformat(created["due_at"])
    url = f"/v1/erasure-requests/{created['id']}/extend"
    extended = api.post(url, json={"months": 2, "reason": "complex request"}, headers=admin_headers)
    assert extended.status_code == 200
    assert datetime.fromisoformat(extended.json()["due_at"]) == due + relativedelta(months=2)
    too_far = api.post(url, json={"months": 1, "reason": "more"}, headers=admin_headers)
    assert too_far.status_code == 422
    assert too_far.json()["errors"][0]["pointer"] == "#/months"
    assert api.post(url, json={"months": 1, "reason": "x" * 5}, headers=held).status_code == 403
