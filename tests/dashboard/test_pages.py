"""The pages, each driven through its forms: the queue, a request and its actions, evidence,
models and the erasure debt, the audit (verify and export), webhooks and API clients."""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import uuid
from datetime import UTC, datetime

from dateutil.relativedelta import relativedelta
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.core.db import get_sessionmaker, utcnow
from tests.dashboard.conftest import plan_now, register_person, submit


def _status(api, headers, request_id: str) -> dict:
    return api.get(f"/v1/erasure-requests/{request_id}", headers=headers).json()


def test_the_queue_counts_filters_searches_and_pages(signed_in, api, held_headers):
    tag = uuid.uuid4().hex[:6]
    for n in range(27):
        submit(
            api, held_headers, value=f"person-{tag}-{n}@example.com", reference=f"Q-{tag}-{n:02d}"
        )
    page = signed_in.get(f"/dashboard/requests?status=pending_approval&q=Q-{tag}")
    assert page.status_code == 200
    assert "27 requests" in page.text and "Page 1 of 2" in page.text
    assert f"Q-{tag}-" in page.text and f"person-{tag}" not in page.text
    second = signed_in.get(f"/dashboard/requests?status=pending_approval&q=Q-{tag}&page=2")
    assert "Page 2 of 2" in second.text and second.text.count(f"Q-{tag}-") == 2
    exact = signed_in.get(f"/dashboard/requests?status=all&q=q-{tag}-07")
    assert "1 request," in exact.text
    none = signed_in.get(f"/dashboard/requests?status=completed&q=Q-{tag}")
    assert "No request matches" in none.text
    counts = signed_in.get("/dashboard/requests")
    assert re.search(
        r'count-number">\d+</span> <span class="count-label">pending approval', counts.text
    )
    assert signed_in.get("/dashboard/requests?status=bogus&page=x&client=nope").status_code == 200


def test_a_request_offers_only_what_its_status_allows(signed_in, api, held_headers):
    request = submit(api, held_headers, value="offers@example.com", reference="OFFERS-1")
    page = signed_in.get(f"/dashboard/requests/{request['id']}")
    assert page.status_code == 200
    for action in ("approve", "deny", "extend", "cancel"):
        assert f'/{action}"' in page.text
    assert '/retry"' not in page.text
    assert "email" in page.text and "offers@example.com" not in page.text

    refused = signed_in.post(f"/dashboard/requests/{request['id']}/retry")
    assert refused.status_code == 409
    assert "cannot become" in refused.text
    assert _status(api, held_headers, request["id"])["status"] == "pending_approval"


def test_deny_needs_a_reason_and_is_audited_as_the_officer(
    signed_in, api, held_headers, session, admin_key
):
    request = submit(api, held_headers, value="deny-me@example.com")
    url = f"/dashboard/requests/{request['id']}/deny"
    empty = signed_in.post(url, {"reason": " "})
    assert empty.status_code == 422
    assert 'aria-invalid="true"' in empty.text and "reason-error" in empty.text
    assert _status(api, held_headers, request["id"])["status"] == "pending_approval"

    denied = signed_in.post(url, {"reason": "Art. 17(3)(b): retention required by law"})
    assert denied.status_code == 303
    assert denied.headers["location"] == f"/dashboard/requests/{request['id']}?done=deny"
    after = signed_in.get(denied.headers["location"])
    assert "Denied;" in after.text and "Art. 17(3)(b)" in after.text
    assert '/approve"' not in after.text and "No action is possible" in after.text
    assert _status(api, held_headers, request["id"])["status"] == "denied"
    session.rollback()
    event = session.scalars(
        select(AuditEvent).where(
            AuditEvent.entity_id == request["id"], AuditEvent.action == "erasure_request.denied"
        )
    ).one()
    key_id = admin_key.removeprefix("lth_").split("_", 1)[0]
    from app.core.auth import ApiClient

    officer = session.scalars(select(ApiClient).where(ApiClient.key_id == key_id)).one()
    assert event.actor == f"client:{officer.id}"


def test_extend_moves_the_due_date_up_to_two_months(signed_in, api, held_headers):
    request = submit(api, held_headers, value="extend-me@example.com")
    due = datetime.fromisoformat(request["due_at"])
    url = f"/dashboard/requests/{request['id']}/extend"
    assert signed_in.post(url, {"months": "3", "reason": "complex"}).status_code == 422
    assert signed_in.post(url, {"months": "2", "reason": "complex request"}).status_code == 303
    body = _status(api, held_headers, request["id"])
    assert datetime.fromisoformat(body["due_at"]) == due + relativedelta(months=2)
    page = signed_in.get(f"/dashboard/requests/{request['id']}")
    assert '/extend"' not in page.text and "complex request" in page.text


def test_approve_then_the_evidence_verifies(signed_in, api, held_headers, make_key):
    lineage = {"Authorization": f"Bearer {make_key(['lineage:write'])}"}
    value = f"evidence-{uuid.uuid4().hex[:6]}@example.com"
    register_person(api, lineage, value=value)
    request = submit(api, held_headers, value=value)
    assert signed_in.post(f"/dashboard/requests/{request['id']}/approve").status_code == 303
    assert plan_now(request["id"]) == "completed"

    page = signed_in.get(f"/dashboard/requests/{request['id']}")
    assert "Certificate and evidence" in page.text and "data-live-settled" in page.text
    live = signed_in.get(f"/dashboard/requests/{request['id']}/live")
    assert 'data-status="completed"' in live.text and "<html" not in live.text
    evidence = signed_in.get(f"/dashboard/requests/{request['id']}/evidence")
    assert evidence.status_code == 200
    assert "Signature valid." in evidence.text and "found in the audit log" in evidence.text
    assert value not in evidence.text
    jws = signed_in.get(f"/dashboard/requests/{request['id']}/certificate.jws")
    assert jws.headers["content-type"] == "application/jose"
    assert "attachment" in jws.headers["content-disposition"]
    assert (
        jws.text
        == api.get(
            f"/v1/erasure-requests/{request['id']}/certificate", headers=held_headers
        ).json()["jws"]
    )


def test_evidence_waits_for_completion(signed_in, api, held_headers):
    request = submit(api, held_headers, value="not-yet@example.com")
    page = signed_in.get(f"/dashboard/requests/{request['id']}/evidence")
    assert page.status_code == 404 and "pending approval" in page.text
    assert signed_in.get(f"/dashboard/requests/{uuid.uuid4()}").status_code == 404
    assert signed_in.get("/dashboard/requests/not-an-id").status_code == 404


def test_models_page_and_the_erasure_debt_panel(signed_in, monkeypatch):
    page = signed_in.get("/dashboard/models")
    assert page.status_code == 200 and "Erasure debt" in page.text
    assert "None: no request is waiting" in page.text

    from app.dashboard.debt import DebtItem
    from app.dashboard.routes import registry

    item = DebtItem(
        request_id=uuid.uuid4(),
        reference="DEBT-1",
        model_id=uuid.uuid4(),
        model_name="churn-approx",
        mitigated_at=utcnow(),
        due_at=utcnow(),
        exact_scheduled_for=None,
    )
    monkeypatch.setattr(registry, "erasure_debt", lambda session: [item])
    page = signed_in.get("/dashboard/models")
    assert "DEBT-1" in page.text and "churn-approx" in page.text and "not scheduled" in page.text
    assert signed_in.get(f"/dashboard/models/{uuid.uuid4()}").status_code == 404


def test_the_audit_chain_verifies_from_the_page(signed_in, monkeypatch):
    page = signed_in.get("/dashboard/audit?verify=1")
    assert "The chain holds." in page.text

    from app.audit.schemas import BrokenLink, ChainVerification
    from app.dashboard.routes import audit

    broken = ChainVerification(
        ok=False,
        events_checked=2,
        head_seq=2,
        head_hash="b" * 64,
        first_broken=BrokenLink(seq=3, reason="content does not match its hash"),
    )
    monkeypatch.setattr(audit, "verify_chain", lambda session: broken)
    page = signed_in.get("/dashboard/audit?verify=1")
    assert "broken at event #3" in page.text and "content does not match its hash" in page.text


def test_the_audit_exports_a_period_as_json_lines_and_csv(signed_in):
    today = datetime.now(UTC).date().isoformat()
    jsonl = signed_in.get(f"/dashboard/audit/export?from={today}&to={today}&format=jsonl")
    assert jsonl.status_code == 200
    assert jsonl.headers["content-type"].startswith("application/x-ndjson")
    assert f"lethe-audit-{today}-{today}.jsonl" in jsonl.headers["content-disposition"]
    events = [json.loads(line) for line in jsonl.text.splitlines()]
    assert events and all(e["occurred_at"].startswith(today) for e in events)
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs)
    assert all(
        b["prev_hash"] == a["hash"]
        for a, b in itertools.pairwise(events)
        if b["seq"] == a["seq"] + 1
    )

    as_csv = signed_in.get(f"/dashboard/audit/export?from={today}&to={today}&format=csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [int(r["seq"]) for r in rows][: len(seqs)] == seqs[: len(rows)]
    assert json.loads(rows[0]["data"]) == events[0]["data"]

    assert signed_in.get("/dashboard/audit/export?from=2026-13-01&to=x").status_code == 400
    assert signed_in.get(f"/dashboard/audit/export?from={today}&to=2000-01-01").status_code == 400
    empty = signed_in.get("/dashboard/audit/export?from=2001-01-01&to=2001-01-02&format=jsonl")
    assert empty.text == ""


def test_webhook_failures_can_be_redelivered(signed_in, make_key):
    from app.core.auth import ApiClient
    from app.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint

    key_id = make_key(["requests:write"]).removeprefix("lth_").split("_", 1)[0]
    with get_sessionmaker()() as s:
        client = s.scalars(select(ApiClient).where(ApiClient.key_id == key_id)).one()
        endpoint = WebhookEndpoint(
            client_id=client.id,
            url="https://portal.example.com/hooks",
            events=["*"],
            secret="whsec_test",
        )
        s.add(endpoint)
        s.flush()
        delivery = WebhookDelivery(
            message_id=f"msg_{uuid.uuid4().hex}",
            client_id=client.id,
            target="endpoint",
            endpoint_id=endpoint.id,
            url=endpoint.url,
            event_type="erasure_request.completed",
            stream=f"test-{uuid.uuid4().hex[:8]}",
            payload={"type": "erasure_request.completed"},
            status=DeliveryStatus.DEAD.value,
            attempts=10,
            last_status_code=503,
            last_error="HTTP 503",
        )
        s.add(delivery)
        s.commit()
        delivery_id = delivery.id
    page = signed_in.get("/dashboard/webhooks")
    assert page.status_code == 200
    assert "https://portal.example.com/hooks" in page.text and "HTTP 503" in page.text
    assert f"/webhooks/deliveries/{delivery_id}/redeliver" in page.text
    done = signed_in.post(f"/dashboard/webhooks/deliveries/{delivery_id}/redeliver")
    assert done.status_code == 303
    with get_sessionmaker()() as s:
        assert s.get(WebhookDelivery, delivery_id).status == DeliveryStatus.PENDING.value
    # Pending, it is sent now rather than at its next attempt.
    again = signed_in.post(f"/dashboard/webhooks/deliveries/{delivery_id}/redeliver")
    assert again.status_code == 303


def test_clients_are_created_and_revoked_from_the_page(signed_in, api):
    empty = signed_in.post("/dashboard/clients", {"name": "", "requires_approval": "1"})
    assert empty.status_code == 422 and "Choose at least one scope" in empty.text
    created = signed_in.post(
        "/dashboard/clients", {"name": "portal from page", "scope:requests:read": "1"}
    )
    assert created.status_code == 201
    key = re.search(r'id="issued-key"[^>]*value="(lth_[^"]+)"', created.text).group(1)
    headers = {"Authorization": f"Bearer {key}"}
    assert api.get("/v1/erasure-requests", headers=headers).status_code == 200
    listing = signed_in.get("/dashboard/clients")
    assert "portal from page" in listing.text and key not in listing.text
    key_id = key.removeprefix("lth_").split("_", 1)[0]
    client_id = re.search(
        rf"lth_{key_id}_….*?/clients/([0-9a-f-]+)/revoke", listing.text, re.S
    ).group(1)
    revoked = signed_in.post(f"/dashboard/clients/{client_id}/revoke")
    assert revoked.status_code == 303
    assert api.get("/v1/erasure-requests", headers=headers).status_code == 401
