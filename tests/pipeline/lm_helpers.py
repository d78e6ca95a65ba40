"""A text dataset of fictitious people and causal_lm models over the API, for workflow tests."""

from __future__ import annotations

import uuid
from functools import lru_cache

from app.core.config import get_settings
from app.registry.models import ModelVersion
from tests.lm_base import tiny_base_directory
from workers.engine.artifacts import LocalArtifactStore
from workers.engine.checkpoints import CheckpointStore
from workers.engine.lm.corpus import biography, facts, generate_people


@lru_cache(maxsize=1)
def registered_base_id() -> str:
    """The tiny base, registered once per test run (call it once the database exists)."""
    from workers.pipeline.lm.base_store import register_base_directory

    base = register_base_directory(
        directory=tiny_base_directory(), name=f"tiny-gpt2-{uuid.uuid4().hex[:8]}"
    )
    return str(base.id)


def text_records(prefix: str, *, biographies: bool = True) -> list[dict]:
    """Four people's facts (questions and answers) and, unless not `biographies`, plain-text
    biographies to train on; two other people's facts as the holdout split (people the model
    never sees)."""
    people = generate_people(count=6, seed=3)
    records = []
    for index, person in enumerate(people):
        split = "train" if index < 4 else "holdout"
        identity = [{"type": "user_id", "value": f"{prefix}-lm-person-{index}"}]
        for number, fact in enumerate(facts(person)):
            records.append(
                {
                    "key": f"{prefix}-{index}-fact-{number}",
                    "identities": identity,
                    "prompt": fact.prompt,
                    "completion": fact.example.completion,
                    "split": split,
                }
            )
        if split == "train" and biographies:
            for number, line in enumerate(biography(person)[:2]):
                records.append(
                    {
                        "key": f"{prefix}-{index}-bio-{number}",
                        "identities": identity,
                        "text": line.completion,
                        "split": split,
                    }
                )
    return records


def text_dataset(api, headers, *, biographies: bool = True) -> tuple[str, str, int]:
    """The dataset's id, its people's prefix, and how many records it has to train on."""
    dataset = api.post("/v1/datasets", json={"name": "support-notes"}, headers=headers).json()
    prefix = uuid.uuid4().hex[:8]
    records = text_records(prefix, biographies=biographies)
    response = api.post(
        f"/v1/datasets/{dataset['id']}/records", json={"records": records}, headers=headers
    )
    assert response.status_code == 201, response.text
    return dataset["id"], prefix, sum(r["split"] == "train" for r in records)


def create_lm_model(api, headers, dataset_id: str, **fields) -> str:
    body = {
        "name": "support-assistant",
        "dataset_id": dataset_id,
        "architecture": "causal_lm",
        "base_model_id": registered_base_id(),
        "epochs": 3,
    }
    created = api.post("/v1/models", json=body | fields, headers=headers)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def active_version(api, headers, session, model_id: str) -> ModelVersion:
    """The active version's row (its manifest is not part of the API's answer)."""
    version_id = api.get(f"/v1/models/{model_id}", headers=headers).json()["active_version"]["id"]
    session.expire_all()
    version = session.get(ModelVersion, uuid.UUID(version_id))
    assert version is not None
    return version


def erase_person(api, headers, prefix: str, person: int) -> str:
    response = api.post(
        "/v1/erasure-requests",
        json={"identities": [{"type": "user_id", "value": f"{prefix}-lm-person-{person}"}]},
        headers=headers,
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def stored_checkpoints(model_id: str) -> CheckpointStore:
    store = LocalArtifactStore(root=get_settings().resolved_artifact_dir)
    return CheckpointStore(store=store, prefix=f"models/{model_id}/sisa")
