"""An approximate erasure whose membership-inference check fails falls back to retraining."""

from __future__ import annotations

import numpy as np

from app.audit.signing import verify_token
from tests.pipeline.helpers import create_model, erase, register_dataset, train, wait_request
from workers.engine.data import synthetic_purchase

# A method budget of one step at a negligible learning rate leaves the model as it was: it still
# remembers the forget set, so the gate must fail and the fallback must run.
NO_OP_POLICY = {"method": "finetune", "settings": {"steps": 1, "learning_rate": 1e-6}}


def test_gate_failure_falls_back_to_retraining(api, make_key, celery_worker):
    headers = {
        "Authorization": "Bearer "
        + make_key(["lineage:write", "models:write", "requests:write", "requests:read"])
    }
    data = synthetic_purchase(records=1500, seed=0)
    reg = register_dataset(api, headers, data=data, limit=len(data.train))
    dataset_id, splits = reg.dataset_id, reg.splits
    model = create_model(
        api,
        headers,
        dataset_id,
        strategy="approximate",
        epochs=20,
        approximate_policy=NO_OP_POLICY,
    )
    train(api, headers, model["id"])
    subjects, counts = np.unique(splits["train"].subject_ids, return_counts=True)
    people = [int(s) for s in subjects[np.argsort(-counts)][:3]]
    request_ids = [erase(api, headers, reg, person) for person in people]
    finals = [wait_request(api, headers, r) for r in request_ids]
    assert [f["status"] for f in finals] == ["completed"] * 3

    active = api.get(f"/v1/models/{model['id']}", headers=headers).json()["active_version"]
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
        "erasure_request.data_purged",
        "erasure_request.completed",
    ]
    fallback = events[actions.index("erasure_request.fallback")]["data"]
    assert "membership test: remembers" in fallback["reason"]

    certificate = api.get(f"/v1/erasure-requests/{request_ids[0]}/certificate", headers=headers)
    _, claims = verify_token(certificate.json()["jws"], api.get("/v1/.well-known/jwks.json").json())
    [model_claims] = claims["models"]
    assert model_claims["exact"] is True and model_claims["method"] == "retrain"
    assert model_claims["verification"]["erased_records_in_new_version"] == 0
