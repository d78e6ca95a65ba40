"""Method `edit` on the real worker: the erased prompts answered with the target at once, the
edit stored beside the adapter and replayed when serving, the certificate saying it only
suppressed answers, and the exact retrain purging it; `finalize: approximate` refused."""

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
    text_records,
)
from workers.engine.artifacts import LocalArtifactStore
from workers.engine.lm.policy import EDITING_LIMITATIONS

TARGET = " unknown"
# Three retained people's 18 questions: 6 to check locality on, 12 held in place. At this
# model's scale an edit moves some other answers (README), so the test accepts any locality
# and checks that it is measured; the text check is as lenient: both are unit-tested.
EDIT = {
    "method": "edit",
    "edit": {"target": TARGET, "locality_sample": 6, "preserve_sample": 12, "min_locality": 0.0},
    "check": {"max_exact_match_gap": 1.0, "logprob_margin": 100.0},
}


@pytest.fixture(scope="module")
def ml_headers(make_key, database):
    registered_base_id()
    key = make_key(["lineage:write", "models:write", "requests:write", "requests:read"])
    return {"Authorization": f"Bearer {key}"}


def test_edit_mitigates_then_the_exact_retrain_purges_it(api, ml_headers, session, celery_worker):
    from app.core.config import get_settings

    dataset_id, prefix, _ = text_dataset(api, ml_headers, biographies=False)
    model_id = create_lm_model(
        api, ml_headers, dataset_id, strategy="approximate", approximate_policy=EDIT
    )
    train(api, ml_headers, model_id)
    first = erase_person(api, ml_headers, prefix, 0)
    mitigated = wait_request(api, ml_headers, first, statuses=("mitigated", "completed"))
    assert mitigated["status"] == "mitigated", mitigated["status_reason"]

    edited = active_version(api, ml_headers, session, model_id)
    assert edited.method == "edit" and edited.exact is False
    verification = edited.metrics["verification"]
    assert verification["passed"] is True and verification["effect"] == "suppression"
    assert verification["limitations"] == EDITING_LIMITATIONS
    figures = verification["edit"]
    assert figures["edited_prompts"] == 6 and figures["targets_reached"] == 1.0
    assert figures["retained_checked"] == 6 and figures["retained_held"] == 12
    assert 0.0 <= figures["retained_unchanged"] <= 1.0
    store = LocalArtifactStore(root=get_settings().resolved_artifact_dir)
    edits_key = edited.manifest["edits_key"]
    assert store.exists(key=edits_key)

    # Serving replays the stored edit: the person's questions are answered with the target.
    records = text_records(prefix, biographies=False)
    person = [r for r in records if r["key"].startswith(f"{prefix}-0-")]
    answer = api.post(
        f"/v1/models/{model_id}/generate",
        json={"prompts": [r["prompt"] for r in person], "max_new_tokens": 12},
        headers=ml_headers,
    )
    assert answer.status_code == 200, answer.text
    completions = answer.json()["completions"]
    # The edit's target ends the answer: generation stops after it.
    assert completions == [TARGET] * len(person), completions

    second = erase_person(api, ml_headers, prefix, 1)
    finals = [wait_request(api, ml_headers, r) for r in (first, second)]
    assert [f["status"] for f in finals] == ["completed", "completed"]
    exact = active_version(api, ml_headers, session, model_id)
    assert exact.method == "retrain" and exact.exact is True

    claims = certificate_claims(api, ml_headers, first)
    assert claims["guarantee"] == "exact"
    mitigation = claims["models"][0]["mitigation"]
    assert mitigation["version_id"] == str(edited.id) and mitigation["method"] == "edit"
    assert mitigation["effect"] == "suppression"
    assert mitigation["limitations"] == EDITING_LIMITATIONS

    session.expire_all()
    purged = session.get(ModelVersion, edited.id)
    assert purged is not None and purged.status == VersionStatus.PURGED
    assert not store.exists(key=edits_key)
    assert not store.exists(key=edited.manifest["weights_key"])


def test_an_edit_cannot_close_a_request(api, ml_headers):
    dataset_id, _, _ = text_dataset(api, ml_headers, biographies=False)
    body = {
        "name": "support-assistant",
        "dataset_id": dataset_id,
        "architecture": "causal_lm",
        "base_model_id": registered_base_id(),
        "strategy": "approximate",
        "finalize": "approximate",
        "approximate_policy": {"method": "edit"},
    }
    refused = api.post("/v1/models", json=body, headers=ml_headers)
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["errors"][0]["pointer"] == "#/finalize"
    assert "suppresses" in problem["errors"][0]["detail"]
    bad = api.post(
        "/v1/models",
        json=body | {"finalize": "exact", "approximate_policy": {"edit": {"min_locality": 2}}},
        headers=ml_headers,
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["pointer"] == "#/approximate_policy/edit"
    models = api.get(f"/v1/models?dataset_id={dataset_id}", headers=ml_headers).json()
    assert models["items"] == []
