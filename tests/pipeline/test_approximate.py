"""Approximate models on the real worker: mitigation first and a scheduled exact retrain to close
each request; a failed mitigation brings the retrain forward; `finalize: approximate` closes with
an approximate certificate, and its failed check falls back to retraining in the same job.

Each exact version has reference models for the gate: built with it, used by its mitigations,
purged with the records they trained on and counted on the certificate, carried or rebuilt for
the next version; a version without them, or with too few left for the gate its policy chose,
never closes a request: the job retrains."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from tests.conftest import wait_for
from tests.pipeline import reference_checks as refs
from tests.pipeline.helpers import (
    GATE_POLICY,
    Registered,
    certificate_claims,
    create_model,
    erase,
    people,
    register_dataset,
    train,
    wait_request,
)
from workers.engine.data import synthetic_purchase
from workers.engine.verification.manifests import (
    manifest_key,
    reference_files,
    references_holding,
)

REFERENCES = GATE_POLICY["verification"]["references"]

# A method budget of one step at a negligible learning rate leaves the model as it was: it still
# remembers the forget set, so the gate must fail (as `remembers` when the people erased are
# unseen by enough of its four references, else as `inconclusive`).
NO_OP_POLICY = {
    "method": "finetune",
    "settings": {"steps": 1, "learning_rate": 1e-6},
    "verification": {"references": 4, "reference_share": 0.2},
}


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


def _actions(api, headers, request_id: str) -> list[str]:
    events = api.get(f"/v1/erasure-requests/{request_id}/events", headers=headers).json()
    return [e["action"] for e in events]


def _active(api, headers, model_id: str) -> dict:
    return api.get(f"/v1/models/{model_id}", headers=headers).json()["active_version"]


def _job(api, headers, request: dict, kind: str) -> dict:
    [job] = [j for j in request["jobs"] if j["kind"] == kind]
    return api.get(f"/v1/jobs/{job['id']}", headers=headers).json()


def test_mitigation_then_a_batched_exact_retrain(api, headers, purchases, celery_worker):
    from workers.pipeline.storage import artifact_store, get_record_ids

    # Ten epochs, with GATE_POLICY's lighter forget weight: a pass the gate can show.
    model = create_model(
        api,
        headers,
        purchases.dataset_id,
        strategy="approximate",
        epochs=10,
        approximate_policy=GATE_POLICY,
    )
    assert model["finalize"] == "exact"
    trained = train(api, headers, model["id"])

    # The version's reference models are built with it, each on a share of its records.
    built = refs.version_row(trained["result_version_id"])
    prefix = built.manifest["references_prefix"]
    assert prefix == f"models/{model['id']}/references/{built.id}"
    assert trained["metrics"]["references"]["count"] == REFERENCES
    assert trained["metrics"]["references"]["trained"] == REFERENCES
    before = refs.manifests(prefix)
    assert sorted(before) == list(range(REFERENCES))
    training_ids = get_record_ids(key=built.manifest["record_ids_key"])
    for manifest in before.values():
        assert 0 < manifest.record_ids.size < training_ids.size
        assert np.isin(manifest.record_ids, training_ids).all()
    first, second, seen = refs.gateable_pair(purchases, before, people(purchases, 6))
    erased = np.concatenate([refs.record_ids(purchases, p) for p in (first, second)])

    mitigated_id = erase(api, headers, purchases, first)
    mitigated = wait_request(api, headers, mitigated_id, statuses=("mitigated", "completed"))
    assert mitigated["status"] == "mitigated", mitigated["status_reason"]
    assert mitigated["mitigated_at"] and mitigated["exact_expected_at"]
    approximate = _active(api, headers, model["id"])
    assert approximate["exact"] is False and approximate["method"].startswith("approximate:")
    # Gated by the version's reference models, not the pooled test; the mitigated version keeps
    # its base's until the exact job.
    figures = _job(api, headers, mitigated, "mitigate")["metrics"]["verification"]
    assert figures["gate"] == "per_record" and figures["references"] == REFERENCES
    assert figures["verification"]["test"] == "per_record_references"
    assert refs.version_row(approximate["id"]).manifest["references_prefix"] == prefix
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
    assert exact["metrics"]["references"]["carried"] == REFERENCES - len(seen)
    assert api.get("/v1/erasure-debt", headers=headers).json() == []
    versions = api.get(f"/v1/models/{model['id']}/versions", headers=headers).json()
    assert {v["id"]: v["status"] for v in versions}[approximate["id"]] == "purged"

    actions = _actions(api, headers, mitigated_id)
    assert actions.index("erasure_request.mitigated") < actions.index(
        "erasure_request.model_erased"
    )
    assert actions[-1] == "erasure_request.completed"
    claims = certificate_claims(api, headers, mitigated_id)
    assert claims["guarantee"] == "exact" and claims["mitigated_at"]
    [model_claims] = claims["models"]
    assert model_claims["exact"] is True and model_claims["batch"]["requests"] == 2
    assert model_claims["records"] == mitigated["plan"]["models_affected"][0]["records"]
    assert model_claims["mitigation"]["version_id"] == approximate["id"]
    assert certificate_claims(api, headers, second_id)["guarantee"] == "exact"

    # No stored reference lists an erased record: the old set is deleted, and counted.
    assert not references_holding(
        manifests=refs.stored_manifests(model["id"]), erased_record_ids=erased
    )
    assert artifact_store().list(prefix=f"{prefix}/") == []
    assert model_claims["purge"]["references"] == REFERENCES
    # The new version has a full set again: those that never saw the records carried as they
    # were, the others retrained without them.
    after = refs.manifests(refs.version_row(exact["id"]).manifest["references_prefix"])
    assert sorted(after) == list(range(REFERENCES))
    for index in set(before) - seen:
        assert np.array_equal(after[index].record_ids, before[index].record_ids)

    # A reference set that no live version names (a job failed after building it) is an orphan.
    from workers.pipeline.orphans import scan_orphans

    stray = f"models/{model['id']}/references/{uuid.uuid4()}/weights/000.pt"
    artifact_store().put(key=stray, data=b"left behind")

    def scanned() -> bool:  # the scan skips the model while a job of it is pending or running
        scan_orphans()
        return not artifact_store().exists(key=stray)

    wait_for(scanned, timeout=60, every=0.5)
    assert sorted(refs.manifests(after[0].prefix)) == sorted(after)


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
    [person] = people(purchases, 1, skip=2)
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
    assert certificate_claims(api, headers, request_id)["guarantee"] == "exact"


def test_finalize_approximate_is_certified_as_approximate(api, headers, purchases, celery_worker):
    model = create_model(
        api,
        headers,
        purchases.dataset_id,
        strategy="approximate",
        finalize="approximate",
        epochs=10,
        approximate_policy=GATE_POLICY,
    )
    trained = train(api, headers, model["id"])
    built = refs.manifests(
        refs.version_row(trained["result_version_id"]).manifest["references_prefix"]
    )
    [person] = refs.gateable(purchases, built, people(purchases, 6, skip=2), 1)
    request_id = erase(api, headers, purchases, person)
    final = wait_request(api, headers, request_id)
    assert final["status"] == "completed"
    assert _active(api, headers, model["id"])["exact"] is False, _job(
        api, headers, final, "unlearn"
    )["metrics"]
    claims = certificate_claims(api, headers, request_id)
    assert claims["guarantee"] == "approximate"
    [model_claims] = claims["models"]
    assert model_claims["exact"] is False and model_claims["limitations"]
    assert model_claims["verification"]["kind"] == "membership_inference"
    # The per-record gate's summary, without a score for each erased record.
    assert model_claims["verification"]["gate"] == "per_record"
    assert model_claims["verification"]["references"] == REFERENCES
    assert "memory" in model_claims["verification"]["verification"]
    assert "record_z" not in model_claims["verification"]["verification"]


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
    trained = train(api, headers, model["id"])
    built = refs.manifests(
        refs.version_row(trained["result_version_id"]).manifest["references_prefix"]
    )
    chosen = refs.gateable(purchases, built, people(purchases, 8, skip=4), 2)
    request_ids = [erase(api, headers, purchases, p) for p in chosen]
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
    claims = certificate_claims(api, headers, request_ids[0])
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
    [person] = people(purchases, 1, skip=6)
    request_id = erase(api, headers, purchases, person)
    final = wait_request(api, headers, request_id)
    assert final["status"] == "completed", final["status_reason"]
    assert len(final["plan"]["models_affected"]) == 2
    assert _actions(api, headers, request_id).count("erasure_request.fallback") == 1


def _fallback_reason(api, headers, request_id: str) -> str:
    events = api.get(f"/v1/erasure-requests/{request_id}/events", headers=headers).json()
    [fallback] = [e for e in events if e["action"] == "erasure_request.fallback"]
    return fallback["data"]["reason"]


def _erase_with_references_left(api, headers, purchases, *, policy: dict, keep: int):
    """Train a `finalize: approximate` model, delete all but `keep` of its version's reference
    models (as earlier erasures' purges would), erase one person; the completed request and
    the now active version."""
    from workers.pipeline.storage import artifact_store

    model = create_model(
        api,
        headers,
        purchases.dataset_id,
        strategy="approximate",
        finalize="approximate",
        epochs=5,
        approximate_policy=policy,
    )
    trained = train(api, headers, model["id"])
    prefix = refs.version_row(trained["result_version_id"]).manifest["references_prefix"]
    for index in refs.manifests(prefix):
        if index >= keep:
            for key in reference_files(manifest_key=manifest_key(prefix=prefix, index=index)):
                artifact_store().delete(key=key)
    [person] = people(purchases, 1, skip=2)
    request_id = erase(api, headers, purchases, person)
    final = wait_request(api, headers, request_id)
    assert final["status"] == "completed", final["status_reason"]
    return request_id, _active(api, headers, model["id"])


def test_a_version_without_references_never_closes_a_request_on_the_pooled_test(
    api, headers, purchases, celery_worker
):
    policy = {"verification": {"references": 4, "reference_share": 0.2}}
    request_id, active = _erase_with_references_left(api, headers, purchases, policy=policy, keep=0)
    # The attempt ran and its figures name the test; whatever its verdict, the job retrained.
    assert active["exact"] is True and active["method"] == "retrain"
    attempt = active["metrics"]["verification"]["approximate_attempt"]
    assert attempt["kind"] == "membership_inference"
    assert attempt["gate"] == "pooled" and attempt["references"] == 0
    assert "auc" in attempt["verification"]
    assert "the pooled test cannot close a request" in _fallback_reason(api, headers, request_id)
    claims = certificate_claims(api, headers, request_id)
    assert claims["guarantee"] == "exact"
    [model_claims] = claims["models"]
    claimed = model_claims["verification"]["approximate_attempt"]
    assert claimed["gate"] == "pooled" and claimed["references"] == 0
    # The exact version has its references again, for the next request's gate.
    rebuilt = refs.manifests(refs.version_row(active["id"]).manifest["references_prefix"])
    assert sorted(rebuilt) == list(range(4))


def test_references_thinned_below_the_retained_share_do_not_close_a_request(
    api, headers, purchases, celery_worker
):
    # Six references at half the people each give records three on each side; four cannot.
    policy = {**GATE_POLICY, "verification": {"references": 6, "reference_share": 0.5}}
    request_id, active = _erase_with_references_left(api, headers, purchases, policy=policy, keep=4)
    assert active["exact"] is True and active["method"] == "retrain"
    attempt = active["metrics"]["verification"]["approximate_attempt"]
    assert attempt["gate"] == "per_record" and attempt["references"] == 4
    assert attempt["verification"]["retained"] is None
    reason = _fallback_reason(api, headers, request_id)
    assert "4 of the policy's 6 reference models are left" in reason
    assert certificate_claims(api, headers, request_id)["guarantee"] == "exact"
