"""Register, train, erase, completed: the whole workflow on the real worker."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import numpy as np
import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEvent
from app.audit.signing import verify_token
from app.core.config import get_settings
from app.lineage.models import TrainingRecord
from tests.conftest import wait_for
from tests.pipeline.helpers import create_model, erase, register_digits, train, wait_request
from workers.engine.artifacts import LocalArtifactStore
from workers.engine.checkpoints import CheckpointStore


@pytest.fixture(scope="module")
def ml_headers(make_key):
    key = make_key(["lineage:write", "models:write", "requests:write", "requests:read"])
    return {"Authorization": f"Bearer {key}"}


def _subject_with_train_records(splits) -> int:
    subjects, counts = np.unique(splits["train"].subject_ids, return_counts=True)
    return int(subjects[np.argmax(counts)])


def _check_offline_verification(certificate: dict, jwks: dict, tmp_path) -> None:
    """`lethe verify-certificate` accepts the certificate and refuses a tampered copy."""
    cert_file, jwks_file = tmp_path / "certificate.json", tmp_path / "jwks.json"
    cert_file.write_text(json.dumps(certificate))
    jwks_file.write_text(json.dumps(jwks))
    command = [sys.executable, "-c", "from app.cli import main; main()", "verify-certificate"]
    ok = subprocess.run(
        [*command, str(cert_file), "--jwks", str(jwks_file)], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("VALID")
    header, payload, signature = certificate["jws"].split(".")
    forged = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged["records_erased"] += 1
    forged_payload = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode().rstrip("=")
    cert_file.write_text(f"{header}.{forged_payload}.{signature}")
    bad = subprocess.run(
        [*command, str(cert_file), "--jwks", str(jwks_file)], capture_output=True, text=True
    )
    assert bad.returncode == 1
    assert "INVALID" in bad.stderr


def test_sisa_erasure_end_to_end(api, ml_headers, admin_headers, session, celery_worker, tmp_path):
    reg = register_digits(api, ml_headers)
    dataset_id, splits = reg.dataset_id, reg.splits
    model = create_model(api, ml_headers, dataset_id, strategy="sisa", shards=2, slices=2, epochs=4)
    train(api, ml_headers, model["id"])
    before = api.get(f"/v1/models/{model['id']}", headers=ml_headers).json()["active_version"]
    assert before["number"] == 1

    person = _subject_with_train_records(splits)
    request_id = erase(api, ml_headers, reg, person)
    final = wait_request(api, ml_headers, request_id)
    assert final["status"] == "completed", final
    assert final["plan"]["models_affected"][0]["model_id"] == model["id"]
    [job] = final["jobs"]
    assert job["model_id"] == model["id"] and job["status"] == "succeeded"

    after = api.get(f"/v1/models/{model['id']}", headers=ml_headers).json()["active_version"]
    assert after["number"] == 2 and after["method"] == "sisa_unlearn" and after["exact"]
    versions = api.get(f"/v1/models/{model['id']}/versions", headers=ml_headers).json()
    assert [(v["number"], v["status"]) for v in versions] == [(2, "active"), (1, "purged")]
    evaluated = wait_for(
        lambda: (
            "test_accuracy"
            in (
                v := api.get(f"/v1/models/{model['id']}", headers=ml_headers).json()[
                    "active_version"
                ]
            )["metrics"]
            and v
        )
    )
    assert 0.0 <= evaluated["metrics"]["test_accuracy"] <= 1.0

    erased_keys = [
        f"{split}-{int(r)}"
        for split, arrays in splits.items()
        for r, s in zip(arrays.record_ids, arrays.subject_ids, strict=True)
        if s == person
    ]
    remaining = session.scalar(
        select(func.count())
        .select_from(TrainingRecord)
        .where(TrainingRecord.dataset_id == dataset_id, TrainingRecord.key.in_(erased_keys))
    )
    assert remaining == 0

    store = CheckpointStore(
        store=LocalArtifactStore(root=get_settings().resolved_artifact_dir),
        prefix=f"models/{model['id']}/sisa",
    )
    certificate = api.get(
        f"/v1/erasure-requests/{request_id}/certificate", headers=ml_headers
    ).json()
    jwks = api.get("/v1/.well-known/jwks.json").json()
    _, claims = verify_token(certificate["jws"], jwks)
    assert claims["request_id"] == request_id
    assert claims["records_erased"] == len(erased_keys)
    [model_claims] = claims["models"]
    assert model_claims["old_version"]["number"] == 1 and model_claims["new_version"]["number"] == 2
    assert model_claims["verification"]["erased_records_in_new_version"] == 0
    assert model_claims["purge"]["checkpoints"] >= 1
    # The chain head the certificate anchors includes the deletions it certifies.
    deleted = session.scalar(
        select(AuditEvent.seq).where(
            AuditEvent.action == "model.artifacts_deleted", AuditEvent.entity_id == model["id"]
        )
    )
    assert deleted is not None and deleted <= claims["audit_chain_head"]["seq"]

    _check_offline_verification(certificate, jwks, tmp_path)

    # Every record id in every stored checkpoint manifest is a record still in the database:
    # the erased ones are in none, and the checkpoints that held them are gone.
    all_ids = np.concatenate([m.record_ids for m in store.manifests()])
    assert all_ids.size > 0
    train_ids_in_db = set(
        session.scalars(select(TrainingRecord.id).where(TrainingRecord.dataset_id == dataset_id))
    )
    assert set(all_ids.tolist()) <= train_ids_in_db

    verified = api.get("/v1/audit/verify", headers=admin_headers).json()
    assert verified["ok"] is True
    actions = [
        e["action"]
        for e in api.get(f"/v1/erasure-requests/{request_id}/events", headers=ml_headers).json()
    ]
    assert actions == [
        "erasure_request.received",
        "erasure_request.planning",
        "erasure_request.planned",
        "erasure_request.running",
        "erasure_request.verifying",
        "erasure_request.model_erased",
        "erasure_request.data_purged",
        "erasure_request.storage_scrubbed",
        "erasure_request.completed",
    ]
    prediction = api.post(
        f"/v1/models/{model['id']}/predict",
        json={"features": splits["test"].features[:3].reshape(3, -1).tolist()},
        headers=ml_headers,
    )
    assert prediction.status_code == 200, prediction.text
    assert len(prediction.json()["labels"]) == 3


def test_sharding_by_person_retrains_one_shard(api, ml_headers, celery_worker):
    reg = register_digits(api, ml_headers, limit=400)
    model = create_model(
        api, ml_headers, reg.dataset_id, shards=4, slices=2, shard_key="subject", epochs=3
    )
    assert model["shards"] == 4 and model["shard_key"] == "subject"
    train(api, ml_headers, model["id"])
    request_id = erase(api, ml_headers, reg, _subject_with_train_records(reg.splits))
    final = wait_request(api, ml_headers, request_id)
    assert final["status"] == "completed"
    job_id = final["plan"]["models_affected"][0]["job_id"]
    job = api.get(f"/v1/jobs/{job_id}", headers=ml_headers).json()
    assert len(job["metrics"]["affected_shards"]) == 1
    assert job["metrics"]["retrained_shards"] == [
        int(next(iter(job["metrics"]["affected_shards"])))
    ]


def test_default_configuration_and_bad_model_input(api, ml_headers):
    reg_id = api.post("/v1/datasets", json={"name": "empty"}, headers=ml_headers).json()["id"]
    model = create_model(api, ml_headers, reg_id)
    assert (model["strategy"], model["shards"], model["slices"]) == ("sisa", 16, 8)
    bad = api.post(
        "/v1/models",
        json={"name": "x", "dataset_id": reg_id, "architecture": "transformer-xl"},
        headers=ml_headers,
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["pointer"] == "#/architecture"
    mixed = api.post(
        "/v1/models",
        json={
            "name": "x",
            "dataset_id": reg_id,
            "architecture": "mlp",
            "strategy": "retrain",
            "shards": 4,
        },
        headers=ml_headers,
    )
    assert mixed.status_code == 422
    untrained = api.post(
        f"/v1/models/{model['id']}/predict", json={"features": [[0.0]]}, headers=ml_headers
    )
    assert untrained.status_code == 409


def test_approximate_policy_is_validated_at_registration(api, ml_headers):
    dataset_id = api.post("/v1/datasets", json={"name": "p"}, headers=ml_headers).json()["id"]
    base = {"name": "x", "dataset_id": dataset_id, "architecture": "mlp", "strategy": "approximate"}
    bad = api.post(
        "/v1/models",
        json=base | {"approximate_policy": {"method": "forgetful", "fallback": "pray"}},
        headers=ml_headers,
    )
    assert bad.status_code == 422
    pointers = {e["pointer"] for e in bad.json()["errors"]}
    assert "#/approximate_policy/method" in pointers
    good = create_model(api, ml_headers, dataset_id, strategy="approximate")
    assert good["approximate_policy"]["method"] == "npo_distill"
    assert good["approximate_policy"]["fallback"] == "retrain"


def test_the_api_never_imports_torch():
    probe = "import sys, app.main; app.main.create_app(); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
