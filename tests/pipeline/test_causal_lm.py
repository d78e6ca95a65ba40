"""A causal language model through the service: a registered base, text records over the API,
SISA over per-shard adapters trained by the real worker, one person erased by retraining only
their shard's adapter, exactly, and every checkpoint that saw them purged."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from app.lineage.models import TrainingRecord
from app.registry.models import MlModel
from tests.pipeline.helpers import certificate_claims, train, wait_request
from tests.pipeline.lm_helpers import (
    active_version,
    create_lm_model,
    erase_person,
    registered_base_id,
    stored_checkpoints,
    text_dataset,
)
from workers.engine.lm.adapter_sisa import AdapterSisa
from workers.engine.lm.scoring import generate
from workers.pipeline.lm.adapters import adapter_config
from workers.pipeline.lm.base_store import load_registered_base
from workers.pipeline.lm.records import load_text_records


@pytest.fixture(scope="module")
def ml_headers(make_key):
    key = make_key(["lineage:write", "models:write", "requests:write", "requests:read"])
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def base_model_id(database) -> str:
    return registered_base_id()


def test_erasure_from_adapters_end_to_end(api, ml_headers, session, base_model_id, celery_worker):
    dataset_id, prefix, train_records = text_dataset(api, ml_headers)
    sisa_id = create_lm_model(
        api,
        ml_headers,
        dataset_id,
        strategy="sisa",
        shards=2,
        slices=2,
        shard_key="subject",
    )
    retrain_id = create_lm_model(api, ml_headers, dataset_id, strategy="retrain")
    trained = {}
    for model_id, method in ((sisa_id, "adapter_sisa_train"), (retrain_id, "train")):
        job = train(api, ml_headers, model_id)
        assert job["metrics"]["train_records"] == train_records
        assert job["metrics"]["text"]["train_records_scored"] == train_records
        trained[model_id] = active_version(api, ml_headers, session, model_id)
        assert trained[model_id].manifest["kind"] == "adapter_sisa"
        assert trained[model_id].method == method

    erased_ids = set(
        session.scalars(
            select(TrainingRecord.id).where(
                TrainingRecord.dataset_id == uuid.UUID(dataset_id),
                TrainingRecord.key.startswith(f"{prefix}-0-"),
            )
        )
    )
    assert erased_ids
    request = wait_request(api, ml_headers, erase_person(api, ml_headers, prefix, 0))
    assert request["status"] == "completed", request
    claims = certificate_claims(api, ml_headers, request["id"])
    assert claims["guarantee"] == "exact"
    assert {m["model_id"]: m["exact"] for m in claims["models"]} == {
        sisa_id: True,
        retrain_id: True,
    }
    session.expire_all()
    assert not session.scalars(
        select(TrainingRecord.id).where(TrainingRecord.id.in_(erased_ids))
    ).all()
    remaining = load_text_records(session, dataset_id=uuid.UUID(dataset_id), split="train")
    assert len(remaining) == train_records - len(erased_ids)

    # Shards keyed by person: one of the two trained again; the retrain strategy's only one.
    for model_id, method, retrained in (
        (sisa_id, "adapter_sisa_unlearn", 1),
        (retrain_id, "retrain", 1),
    ):
        version = active_version(api, ml_headers, session, model_id)
        assert version.method == method
        assert len(version.metrics["retrained_shards"]) == retrained
        verification = version.metrics["verification"]
        assert verification["kind"] == "exact"
        assert verification["erased_records"] == len(erased_ids)
        assert verification["text"]["erased_records_scored"] == len(erased_ids)
        scratch = _check_purged_and_exact(
            session,
            model_id=model_id,
            old=trained[model_id],
            new=version,
            erased_ids=erased_ids,
            base_model_id=base_model_id,
        )
        _check_generation(api, ml_headers, model_id=model_id, scratch=scratch, records=remaining)


def _check_generation(api, headers, *, model_id: str, scratch: AdapterSisa, records) -> None:
    """The API's completions are the active version's own: those of the adapters trained from
    scratch without the person, which are identical to it."""
    prompts = [r.example.prompt for r in records if r.example.prompt][:3]
    answer = api.post(
        f"/v1/models/{model_id}/generate",
        json={"prompts": prompts, "max_new_tokens": 6},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    expected = [
        generate(model=scratch.ensemble(), tokenizer=scratch.tokenizer, prompt=p, max_new_tokens=6)
        for p in prompts
    ]
    assert answer.json()["completions"] == expected
    refused = api.post(
        f"/v1/models/{model_id}/predict", json={"features": [[1.0]]}, headers=headers
    )
    assert refused.status_code == 422


def _check_purged_and_exact(
    session, *, model_id: str, old, new, erased_ids: set[int], base_model_id: str
) -> AdapterSisa:
    """No stored checkpoint of the model saw the erased records (the old version's that did are
    gone), and the new version's adapters are, bit for bit, those that training from scratch on
    the remaining records gives."""
    checkpoints = stored_checkpoints(model_id)
    stored = list(checkpoints.manifests())
    assert not [m.key for m in stored if m.contains_any(sorted(erased_ids))]
    old_keys = {k for shard in old.manifest["shards"] for k in shard["slice_keys"]}
    new_keys = {k for shard in new.manifest["shards"] for k in shard["slice_keys"]}
    assert {m.key for m in stored} == new_keys
    assert old_keys - new_keys

    model = session.get(MlModel, uuid.UUID(model_id))
    base, tokenizer = load_registered_base(uuid.UUID(base_model_id))
    scratch = AdapterSisa(base=base, tokenizer=tokenizer, config=adapter_config(model))
    scratch.train(records=load_text_records(session, dataset_id=model.dataset_id, split="train"))
    for shard in new.manifest["shards"]:
        for stage, key in enumerate(shard["slice_keys"]):
            fresh = scratch.checkpoints[(shard["shard"], stage)]
            assert fresh.key == key
            assert fresh.state == checkpoints.get_state(key=key)
    return scratch
