"""Approximate models on the real worker: mitigation first and a scheduled exact retrain to close
each request; a failed mitigation brings the retrain forward; `finalize: approximate` closes with
an approximate certificate, and its failed check falls back to retraining in the same job."""

from __future__ import annotations

import numpy as np
import pytest

from app.audit.signing import verify_token
from tests.pipeline.helpers import (
    Registered,
    create_model,
    erase,
    register_dataset,
    train,
    wait_request,
)
from workers.engine.data import synthetic_purchase

# A method budget of one step at a negligible learning rate leaves the model as it was: it still
# remembers the forget set, so the gate must fail.
NO_OP_POLICY = {"method": "finetune", "settings": {"steps": 1, "learning_rate": 1e-6}}


@pytest.fixture(scope="module")
def headers(make_key):
    key = make_key(["lineage:write", "models:write", "requests:write", "requests:read"])
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def purchases(api, headers) -> Registered:
    """A dataset of its own for each test: every trained model on a dataset is affected by an
    erasure of its records."""
    data = synthetic_purchase(records=1500, seed=0)
    return register_dataset(api, headers, data=data, limit=len(data.train))


def _people(reg: Registered, count: int, *, skip: int = 0) -> list[int]:
    subjects, counts = np.unique(reg.splits["train"].subject_ids, return_counts=True)
    return [int(s) for s in subjects[np.argsort(-counts)][skip : skip + count]]


def _actions(api, headers, request_id: str) -> list[str]:
    events = api.get(f"/v1/erasure-requests/{request_id}/events", headers=headers).json()
    return [e["action"] for e in events]


def _claims(api, headers, request_id: str) -> dict:
    certificate = api.get(f"/v1/erasure-requests/{request_id}/certificate", headers=headers)
    assert certificate.status_code == 200, certificate.text
    _, claims = verify_token(certificate.json()["jws"], api.get("/v1/.well-known/jwks.json").json())
    return claims


def _active(api, headers, model_id: str) -> dict:
    return api.get(f"/v1/models/{model_id}", headers=headers).json()["active_version"]


def test_mitigation_then_a_batched_exact_retrain(api, headers, purchases, celery_worker):
    # Five epochs: a model that memorizes little, which the default method is known to pass.
    model = create_model(api, headers, purchases.dataset_id, strategy="approximate", epochs=5)
    assert model["finalize"] == "exact"
    train(api, headers, model["id"])
    first, second = _people(purchases, 2)

    mitigated_id = erase(api, headers, purchases, first)
    mitigated = wait_request(api, headers, mitigated_id, statuses=("mitigated", "completed"))
    assert mitigated["status"] == "mitigated", mitigated["status_reason"]
    assert mitigated["mitigated_at"] and mitigated["exact_expected_at"]
    approximate = _active(api, headers, model["id"])
    assert approximate["exact"] is False and approximate["method"].startswith("approximate:")
    assert "erasure_request.model_mitigated" in _actions(api, headers, mitigated_id)
    not_yet = api.get(f"/v1/erasure-requests/{mitigated_id}/certificate", headers=headers)
    assert not_yet.status_code == 409
    [debt] = api.get("/v1/erasure-debt", headers=headers).json()
    assert debt["model_id"] == model["id"] and debt["requests"] == 1
    assert debt["scheduled_by"] == "max_wait"

    # The second request fills the batch (LETHE_EXACT_BATCH_SIZE=2): one retrain closes both.
    second_id = erase(api, headers, purchases, second)
    finals = [wait_request(api, headers, r) for r in (mitigated_id, second_id)]
    assert [f["status"] for f in finals] == ["completed", "completed"]
    exact = _active(api, headers, model["id"])
    assert exact["exact"] is True and exact["method"] == "retrain"
    assert api.get("/v1/erasure-debt", headers=headers).json() == []
    versions = api.get(f"/v1/models/{model['id']}/versions", headers=headers).json()
    assert {v["id"]: v["status"] for v in versions}[approximate["id"]] == "purged"

    actions = _actions(api, headers, mitigated_id)
    assert actions.index("erasure_request.mitigated") < actions.index(
        "erasure_request.model_erased"
    )
    assert actions[-1] == "erasure_request.completed"
    claims = _claims(api, headers, mitigated_id)
    assert claims["guarantee"] == "exact" and claims["mitigated_at"]
    [model_claims] = claims["models"]
    assert model_claims["exact"] is True and model_claims["batch"]["requests"] == 2
    assert model_claims["records"] == mitigated["plan"]["models_affected"][0]["records"]
    assert model_claims["mitigation"]["version_id"] == approximate["id"]
    assert _claims(api, headers, second_id)["guarantee"] == "exact"


def test_a_failed_mitigation_brings_the_exact_retrain_forward(
    api, headers, purchases, celery_worker
):
    model = create_model(
        api,
        headers,
        purchases.dataset_id,
        strategy="approximate",
        epochs=20,
        approximate_policy=NO_OP_POLICY,
    )
    train(api, headers, model["id"])
    [person] = _people(purchases, 1, skip=2)
    request_id = erase(api, headers, purchases, person)
    final = wait_request(api, headers, request_id)
    assert final["status"] == "completed" and final["mitigated_at"] is None

    actions = _actions(api, headers, request_id)
    assert "erasure_request.mitigation_failed" in actions
    assert "erasure_request.mitigated" not in actions
    active = _active(api, headers, model["id"])
    assert active["method"] == "retrain" and active["exact"] is True
    jobs = {j["kind"]: j for j in final["jobs"]}
    job = api.get(f"/v1/jobs/{jobs['unlearn']['id']}", headers=headers).json()
    assert job["metrics"]["scheduled_by"] == "fallback"
    assert _claims(api, headers, request_id)["guarantee"] == "exact"


def test_finalize_approximate_is_certified_as_approximate(api, headers, purchases, celery_worker):
    model = create_model(
        api,
        headers,
        purchases.dataset_id,
        strategy="approximate",
        finalize="approximate",
        epochs=5,
    )
    train(api, headers, model["id"])
    [person] = _people(purchases, 1, skip=2)
    request_id = erase(api, headers, purchases, person)
    final = wait_request(api, headers, request_id)
    assert final["status"] == "completed"
    assert _active(api, headers, model["id"])["exact"] is False
    claims = _claims(api, headers, request_id)
    assert claims["guarantee"] == "approximate"
    [model_claims] = claims["models"]
    assert model_claims["exact"] is False and model_claims["limitations"]
    assert model_claims["verification"]["kind"] == "membership_inference"


def test_gate_failure_falls_back_to_retraining(api, headers, purchases, celery_worker):
    model = create_model(
        api,
        headers,
        purchases.dataset_id,
        strategy="approximate",
        finalize="approximate",
        epochs=20,
        approximate_policy=NO_OP_POLICY,
    )
    train(api, headers, model["id"])
    request_ids = [erase(api, headers, purchases, p) for p in _people(purchases, 2, skip=4)]
    finals = [wait_request(api, headers, r) for r in request_ids]
    assert [f["status"] for f in finals] == ["completed"] * 2

    active = _active(api, headers, model["id"])
    assert active["method"] == "retrain" and active["exact"] is True
    attempt = active["metrics"]["verification"]["approximate_attempt"]
    assert attempt["verification"]["verdict"] == "remembers"
    assert attempt["method"] == "finetune"

    events = api.get(f"/v1/erasure-requests/{request_ids[0]}/events", headers=headers).json()
    actions = [e["action"] for e in events]
    assert actions[3:] == [
        "erasure_request.running",
        "erasure_request.verifying",
        "erasure_request.fallback",
        "erasure_request.verifying",
        "erasure_request.model_erased",
        "erasure_request.data_purged",
        "erasure_request.storage_scrubbed",
        "erasure_request.completed",
    ]
    fallback = events[actions.index("erasure_request.fallback")]["data"]
    assert "membership test: remembers" in fallback["reason"]
    claims = _claims(api, headers, request_ids[0])
    assert claims["guarantee"] == "exact"
    [model_claims] = claims["models"]
    assert model_claims["exact"] is True and model_claims["method"] == "retrain"
    assert model_claims["verification"]["erased_records_in_new_version"] == 0


def test_a_request_spanning_models_records_each_fallback(api, headers, purchases, celery_worker):
    """A fallback is on the request's trail even while another of its models still runs."""
    approximate = create_model(
        api,
        headers,
        purchases.dataset_id,
        strategy="approximate",
        finalize="approximate",
        epochs=20,
        approximate_policy=NO_OP_POLICY,
    )
    sisa = create_model(api, headers, purchases.dataset_id, shards=2, slices=2, epochs=5)
    for model in (approximate, sisa):
        train(api, headers, model["id"])
    [person] = _people(purchases, 1, skip=6)
    request_id = erase(api, headers, purchases, person)
    final = wait_request(api, headers, request_id)
    assert final["status"] == "completed", final["status_reason"]
    assert len(final["plan"]["models_affected"]) == 2
    assert _actions(api, headers, request_id).count("erasure_request.fallback") == 1
