"""Registering base models (`lethe base-models`), listing them, and the rules of a `causal_lm`
model: a text dataset, a registered base, a language-model policy; problems point at the field."""

from __future__ import annotations

import json
import shutil
import uuid

import pytest
from safetensors.torch import load_file
from typer.testing import CliRunner

from app.cli import cli
from app.registry.base_models import BaseDirectoryError, read_base_directory
from tests.conftest import table_counts
from tests.lm_base import tiny_base_directory


@pytest.fixture(scope="module")
def headers(make_key):
    return {"Authorization": f"Bearer {make_key(['lineage:write', 'models:write'])}"}


@pytest.fixture(scope="module")
def base_id(database) -> str:
    name = f"tiny-{uuid.uuid4().hex[:8]}"
    result = CliRunner().invoke(
        cli, ["base-models", "add", str(tiny_base_directory()), "--name", name]
    )
    assert result.exit_code == 0, result.output
    assert "registered base model" in result.output
    return result.output.rsplit("id ", 1)[1].strip()


def _problem(response, pointer: str) -> dict:
    assert response.status_code == 422, response.text
    body = response.json()
    assert [e["pointer"] for e in body["errors"]] == [pointer]
    return body


def test_reading_a_directory_counts_parameters_and_refuses_what_is_not_a_base(tmp_path):
    read = read_base_directory(directory=tiny_base_directory())
    weights = load_file(tiny_base_directory() / "model.safetensors")
    assert read.parameters == sum(t.numel() for t in weights.values())
    assert read.model_type == "gpt2"
    assert {f.name for f in read.files} >= {"config.json", "model.safetensors", "tokenizer.json"}

    copy = tmp_path / "copy"
    shutil.copytree(tiny_base_directory(), copy)
    (copy / "tokenizer.json").unlink()
    with pytest.raises(BaseDirectoryError, match=r"lacks tokenizer\.json"):
        read_base_directory(directory=copy)
    shutil.copy(tiny_base_directory() / "tokenizer.json", copy / "tokenizer.json")
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "model_type": "llama"}))
    with pytest.raises(BaseDirectoryError, match="model_type must be one of gpt2"):
        read_base_directory(directory=copy)


def test_cli_refuses_a_bad_directory_and_a_taken_name(base_id, tmp_path, session):
    before = table_counts(session)
    runner = CliRunner()
    empty = runner.invoke(cli, ["base-models", "add", str(tmp_path), "--name", "empty"])
    assert empty.exit_code == 1
    assert "error: the directory lacks config.json" in empty.output
    listed = runner.invoke(cli, ["base-models", "list"])
    name = next(line.split()[1] for line in listed.output.splitlines() if base_id in line)
    taken = runner.invoke(cli, ["base-models", "add", str(tiny_base_directory()), "--name", name])
    assert taken.exit_code == 1
    assert "exists" in taken.output
    assert table_counts(session) == before


def test_causal_lm_models_need_a_text_dataset_a_base_and_a_language_model_policy(
    api, headers, base_id, session
):
    listed = api.get("/v1/base-models", headers=headers).json()["items"]
    assert base_id in {b["id"] for b in listed}
    one = api.get(f"/v1/base-models/{base_id}", headers=headers).json()
    assert one["model_type"] == "gpt2"
    assert one["files"]["model.safetensors"]["sha256"]
    assert api.get(f"/v1/base-models/{uuid.uuid4()}", headers=headers).status_code == 404

    text = api.post("/v1/datasets", json={"name": "notes"}, headers=headers).json()["id"]
    record = {"key": "n-0", "identities": [{"type": "user_id", "value": "lm-rules"}], "text": "hi"}
    api.post(f"/v1/datasets/{text}/records", json={"records": [record]}, headers=headers)
    tabular = api.post("/v1/datasets", json={"name": "rows"}, headers=headers).json()["id"]
    row = {"key": "r-0", "identities": [{"type": "user_id", "value": "lm-rules"}]}
    row |= {"features": [1.0], "label": 0}
    api.post(f"/v1/datasets/{tabular}/records", json={"records": [row]}, headers=headers)

    model = {
        "name": "lm",
        "dataset_id": text,
        "architecture": "causal_lm",
        "base_model_id": base_id,
    }
    before = table_counts(session)
    post = lambda body: api.post("/v1/models", json=body, headers=headers)  # noqa: E731
    _problem(post({**model, "dataset_id": tabular}), "#/dataset_id")
    _problem(post({k: v for k, v in model.items() if k != "base_model_id"}), "#/base_model_id")
    _problem(post({**model, "base_model_id": str(uuid.uuid4())}), "#/base_model_id")
    bad_policy = {"strategy": "approximate", "approximate_policy": {"method": "scrub"}}
    _problem(post({**model, **bad_policy}), "#/approximate_policy/method")
    _problem(post({**model, "aggregation": "vote"}), "#/aggregation")
    _problem(post({**model, "architecture": "mlp", "dataset_id": tabular}), "#/base_model_id")
    assert table_counts(session) == before

    created = post({**model, "strategy": "retrain"})
    assert created.status_code == 201, created.text
    assert created.json()["base_model_id"] == base_id
    predicted = api.post(
        f"/v1/models/{created.json()['id']}/predict", json={"features": [[1.0]]}, headers=headers
    )
    assert predicted.status_code == 422
    assert predicted.json()["type"].endswith("text-model")


def test_generation_is_for_language_models_and_checks_its_prompts(api, headers, base_id):
    tabular = api.post("/v1/datasets", json={"name": "rows-2"}, headers=headers).json()["id"]
    row = {"key": "r-0", "identities": [{"type": "user_id", "value": "gen-rules"}]}
    row |= {"features": [1.0], "label": 0}
    api.post(f"/v1/datasets/{tabular}/records", json={"records": [row]}, headers=headers)
    mlp = api.post(
        "/v1/models",
        json={"name": "m", "dataset_id": tabular, "architecture": "mlp"},
        headers=headers,
    ).json()["id"]
    refused = api.post(f"/v1/models/{mlp}/generate", json={"prompts": ["Hi"]}, headers=headers)
    assert refused.status_code == 422
    assert refused.json()["type"].endswith("not-a-text-model")
    for body, pointer in (
        ({"prompts": []}, "#/prompts"),
        ({"prompts": ["x"], "max_new_tokens": 0}, "#/max_new_tokens"),
        ({"prompts": ["x"], "temperature": 1}, "#/temperature"),
    ):
        bad = api.post(f"/v1/models/{mlp}/generate", json=body, headers=headers)
        assert bad.status_code == 422
        assert [e["pointer"] for e in bad.json()["errors"]] == [pointer]
