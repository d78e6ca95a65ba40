"""Erased people do not come back: after an erasure, a record for the same identity is refused
(409, nothing written) unless it states a lawful basis, which is audited and lifts the
suppression for the dataset's client alone."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.lineage.models import TrainingRecord
from tests.suppression.helpers import erase


def _record(key: str, email: str, **extra) -> dict:
    identities = [{"type": "email", "value": email}]
    return {"key": key, "identities": identities, "features": [0.5, 1.0], "label": 1} | extra


def _post(api, headers, dataset_id: str, *records: dict):
    return api.post(
        f"/v1/datasets/{dataset_id}/records", json={"records": list(records)}, headers=headers
    )


def _dataset(api, headers) -> str:
    return api.post("/v1/datasets", json={"name": "people"}, headers=headers).json()["id"]


@pytest.fixture
def erased(api, portal_headers, enqueued) -> tuple[str, str]:
    """A dataset and the address of a person whose records in it were erased."""
    email = f"erased-{uuid.uuid4().hex[:8]}@example.com"
    dataset_id = _dataset(api, portal_headers)
    response = _post(api, portal_headers, dataset_id, _record("a-1", email))
    assert response.status_code == 201
    erase(api, portal_headers, email)
    return dataset_id, email


def _train_keys(session, dataset_id: str) -> set[str]:
    session.rollback()
    return set(
        session.scalars(
            select(TrainingRecord.key).where(TrainingRecord.dataset_id == uuid.UUID(dataset_id))
        )
    )


def test_an_erased_identity_is_refused_without_a_lawful_basis(api, portal_headers, session, erased):
    dataset_id, email = erased
    other = f"other-{uuid.uuid4().hex[:8]}@example.com"
    response = _post(
        api,
        portal_headers,
        dataset_id,
        _record("b-1", other),
        _record("b-2", f"  {email.upper()} "),  # normalized to the erased address
    )
    assert response.status_code == 409, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/identity-suppressed")
    assert [e["pointer"] for e in problem["errors"]] == ["#/records/1/identities/0"]
    assert email.split("@")[0] not in response.text.lower()
    assert _train_keys(session, dataset_id) == set()  # nothing written, not even b-1


def test_a_lawful_basis_is_audited_and_lifts_the_suppression_for_the_client(
    api, portal_headers, make_key, admin_headers, session, erased
):
    dataset_id, email = erased
    basis = {"basis": "consent", "note": "signed up again, consent form 2026-12-01"}
    response = _post(api, portal_headers, dataset_id, _record("c-1", email, lawful_basis=basis))
    assert response.status_code == 201, response.text
    assert response.json()["new_subjects"] == 1

    session.rollback()
    [event] = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.action == "suppression.lifted")
        .where(AuditEvent.data["dataset_id"].as_string() == dataset_id)
    ).all()
    assert event.data["basis"] == "consent" and event.data["note"] == basis["note"]
    assert event.data["identity_type"] == "email"
    assert email.split("@")[0] not in str(event.data) and event.actor.startswith("client:")

    # Lifted for this client: its next record needs no basis again.
    assert _post(api, portal_headers, dataset_id, _record("c-2", email)).status_code == 201
    assert _train_keys(session, dataset_id) == {"c-1", "c-2"}

    # Another client's datasets are still closed to the person.
    stranger = {"Authorization": f"Bearer {make_key(['lineage:write'])}"}
    elsewhere = _dataset(api, stranger)
    assert _post(api, stranger, elsewhere, _record("d-1", email)).status_code == 409

    # The privacy officer's view: types, times, requests and bases, no identity in it.
    listed = api.get("/v1/suppressions?identity_type=email&limit=200", headers=admin_headers)
    assert listed.status_code == 200
    [entry] = [i for i in listed.json()["items"] if i["id"] == event.entity_id]
    assert [o["basis"] for o in entry["lawful_basis_overrides"]] == ["consent"]
    assert email.split("@")[0] not in listed.text
    assert api.get("/v1/suppressions", headers=portal_headers).status_code == 403
    assert "lethe_suppressed_identities" in api.get("/metrics").text


def test_a_lawful_basis_must_name_an_art_6_basis(api, portal_headers, session, erased):
    dataset_id, email = erased
    bad = _record("e-1", email, lawful_basis={"basis": "because"})
    response = _post(api, portal_headers, dataset_id, bad)
    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == "#/records/0/lawful_basis/basis"


def test_a_request_that_found_no_data_suppresses_too(api, portal_headers, enqueued):
    email = f"never-seen-{uuid.uuid4().hex[:8]}@example.com"
    erase(api, portal_headers, email)
    dataset_id = _dataset(api, portal_headers)
    assert _post(api, portal_headers, dataset_id, _record("f-1", email)).status_code == 409
