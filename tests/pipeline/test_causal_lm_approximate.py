"""Approximate causal_lm models on the real worker: NPO on the model's adapter as a mitigation,
then the scheduled exact retrain that closes the requests and purges the mitigated adapter; with
`finalize: approximate`, a result that passes the text check closes the request as approximate
and one that fails it falls back to retraining."""

from __future__ import annotations

import pytest

from app.registry.enums import VersionStatus
from app.registry.models import ModelVersion
from tests.pipeline.helpers import certificate_claims, train, wait_request
from tests.pipeline.lm_helpers import (
    active_version,
    create_lm_model,
    erase_person,
    registered_base_id,
    text_dataset,
)
from workers.engine.artifacts import LocalArtifactStore

# A check that any result passes, and one that none does: the check itself is unit-tested;
# these tests are about what follows each outcome.
LENIENT = {
    "settings": {"steps": 5},
    "check": {"max_exact_match_gap": 1.0, "logprob_margin": 100.0},
}
STRICT = {
    "settings": {"steps": 1, "learning_rate": 1e-6},
    "check": {"max_exact_match_gap": 0.0, "logprob_margin": 0.0},
}


@pytest.fixture(scope="module")
def ml_headers(make_key, database):
    registered_base_id()
    key = make_key(["lineage:write", "models:write", "requests:write", "requests:read"])
    return {"Authorization": f"Bearer {key}"}


def test_mitigation_exact_retrain_approximate_close_and_fallback(
    api, ml_headers, session, celery_worker
):
    """Three approximate models on one dataset, two requests: `mitigates` (finalize exact) is
    mitigated, then retrained once the second request fills the batch; `closes` (finalize
    approximate) passes its check and closes as approximate; `falls_back` fails it and
    retrains."""
    from app.core.config import get_settings

    dataset_id, prefix, _ = text_dataset(api, ml_headers)
    mitigates = create_lm_model(
        api, ml_headers, dataset_id, strategy="approximate", approximate_policy=LENIENT
    )
    closes, falls_back = (
        create_lm_model(
            api,
            ml_headers,
            dataset_id,
            strategy="approximate",
            finalize="approximate",
            approximate_policy=policy,
        )
        for policy in (LENIENT, STRICT)
    )
    for model_id in (mitigates, closes, falls_back):
        train(api, ml_headers, model_id)
    first = erase_person(api, ml_headers, prefix, 0)
    mitigated = wait_request(api, ml_headers, first, statuses=("mitigated", "completed"))
    assert mitigated["status"] == "mitigated", mitigated["status_reason"]
    approximate = active_version(api, ml_headers, session, mitigates)
    assert approximate.method == "approximate:npo" and approximate.exact is False
    verification = approximate.metrics["verification"]
    assert verification["kind"] == "text_check" and verification["passed"] is True
    assert {
        "erased_exact_match",
        "holdout_exact_match",
        "membership_auc",
        "membership_auc_min_k",
    } <= set(verification)
    weights = approximate.manifest["weights_key"]
    store = LocalArtifactStore(root=get_settings().resolved_artifact_dir)
    assert store.exists(key=weights)

    # The second request fills the batch (LETHE_EXACT_BATCH_SIZE=2): one retrain closes both.
    second = erase_person(api, ml_headers, prefix, 1)
    finals = [wait_request(api, ml_headers, r) for r in (first, second)]
    assert [f["status"] for f in finals] == ["completed", "completed"]
    exact = active_version(api, ml_headers, session, mitigates)
    assert exact.method == "retrain" and exact.exact is True
    assert exact.manifest["kind"] == "adapter_sisa"

    claims = certificate_claims(api, ml_headers, first)
    assert claims["guarantee"] == "approximate"  # `closes` was only edited
    by_model = {m["model_id"]: m for m in claims["models"]}
    assert by_model[mitigates]["exact"] is True
    assert by_model[mitigates]["mitigation"]["version_id"] == str(approximate.id)
    assert by_model[closes]["exact"] is False and by_model[closes]["limitations"]
    assert by_model[closes]["method"] == "approximate:npo"
    assert by_model[closes]["verification"]["kind"] == "text_check"
    assert by_model[falls_back]["exact"] is True
    assert by_model[falls_back]["method"] == "retrain"
    attempt = by_model[falls_back]["verification"]["approximate_attempt"]
    assert attempt["passed"] is False and attempt["reasons"]
    assert active_version(api, ml_headers, session, closes).exact is False
    assert active_version(api, ml_headers, session, falls_back).exact is True

    # The mitigated adapter still carried the people: purged with the exact retrain.
    session.expire_all()
    purged = session.get(ModelVersion, approximate.id)
    assert purged is not None and purged.status == VersionStatus.PURGED
    assert not store.exists(key=weights)
