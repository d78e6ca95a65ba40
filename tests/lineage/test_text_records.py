"""Text records for language models: intake over the API and from JSON lines, the one-kind rule
with problems that point at the field, and their purge by an erasure request."""

from __future__ import annotations

import json

from sqlalchemy import select

from app.lineage.models import Dataset, TrainingRecord
from tests.conftest import table_counts, wait_for
from tests.lineage.test_import import _lethe


def _dataset(api, headers, name: str = "support-tickets") -> str:
    return api.post("/v1/datasets", json={"name": name}, headers=headers).json()["id"]


def _person(value: str) -> list[dict]:
    return [{"type": "user_id", "value": value}]


def _post(api, headers, dataset_id: str, records: list[dict]):
    return api.post(
        f"/v1/datasets/{dataset_id}/records", json={"records": records}, headers=headers
    )


def test_text_and_prompt_completion_records_are_stored(api, portal_headers, session):
    dataset_id = _dataset(api, portal_headers)
    response = _post(
        api,
        portal_headers,
        dataset_id,
        [
            {"key": "t-1", "identities": _person("text-ann"), "text": "Ann lives in Vell.\n"},
            {
                "key": "t-2",
                "identities": _person("text-ann"),
                "prompt": "Where does Ann live?",
                "completion": " Vell",
                "split": "holdout",
            },
        ],
    )
    assert response.status_code == 201, response.text
    assert response.json()["added"] == 2
    assert response.json()["new_subjects"] == 1
    dataset = api.get(f"/v1/datasets/{dataset_id}", headers=portal_headers).json()
    assert dataset["record_kind"] == "text"
    assert dataset["feature_count"] is None
    assert dataset["record_counts"] == {"train": 1, "holdout": 1}
    rows = session.scalars(
        select(TrainingRecord).join(Dataset).where(Dataset.name == "support-tickets")
    ).all()
    stored = {r.key: (r.prompt, r.completion, r.features) for r in rows}
    assert stored == {
        "t-1": (None, "Ann lives in Vell.\n", b""),
        "t-2": ("Where does Ann live?", " Vell", b""),
    }
    session.rollback()


def _problem(response, status: int, pointer: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert [e["pointer"] for e in body["errors"]] == [pointer]
    return body


def test_each_malformed_record_names_its_field_and_changes_nothing(api, portal_headers, session):
    dataset_id = _dataset(api, portal_headers, "malformed-text")
    ok = {"key": "m-0", "identities": _person("text-bob")}
    cases = [
        ({**ok, "text": "x", "features": [1.0], "label": 0}, "#/records/0/text"),
        ({**ok, "text": "x", "completion": "y"}, "#/records/0/completion"),
        ({**ok, "prompt": "Where?"}, "#/records/0/completion"),
        ({**ok, "features": [1.0]}, "#/records/0/label"),
        ({**ok, "label": 1}, "#/records/0/features"),
        (ok, "#/records/0"),
    ]
    before = table_counts(session)
    for record, pointer in cases:
        body = _problem(_post(api, portal_headers, dataset_id, [record]), 422, pointer)
        assert body["type"].endswith("invalid-record")
        assert "text-bob" not in json.dumps(body)
    control = {**ok, "text": "bad\x07bell"}
    _problem(_post(api, portal_headers, dataset_id, [control]), 422, "#/records/0/text")
    mixed = [{**ok, "text": "x"}, {**ok, "key": "m-1", "features": [1.0], "label": 0}]
    body = _problem(_post(api, portal_headers, dataset_id, mixed), 422, "#/records/1")
    assert body["type"].endswith("record-kind-mismatch")
    assert table_counts(session) == before


def test_a_dataset_holds_one_kind_and_text_datasets_train_no_tabular_model(api, make_key):
    headers = {"Authorization": f"Bearer {make_key(['lineage:write', 'models:write'])}"}
    dataset_id = _dataset(api, headers, "one-kind")
    text = {"key": "k-0", "identities": _person("c"), "text": "hi"}
    assert _post(api, headers, dataset_id, [text]).status_code == 201
    tabular = {"key": "k-1", "identities": _person("c"), "features": [1.0, 2.0], "label": 1}
    body = _problem(_post(api, headers, dataset_id, [tabular]), 422, "#/records/0")
    assert body["type"].endswith("record-kind-mismatch")
    model = {"name": "m", "dataset_id": dataset_id, "architecture": "mlp", "strategy": "sisa"}
    body = _problem(api.post("/v1/models", json=model, headers=headers), 422, "#/dataset_id")
    assert body["type"].endswith("text-dataset")


def test_import_text_records_from_json_lines(api, portal_headers, tmp_path):
    dataset_id = _dataset(api, portal_headers, "jsonl-import")
    path = tmp_path / "tickets.jsonl"
    lines = [
        json.dumps(
            {
                "key": f"ticket-{i}",
                "identities": [{"type": "email", "value": f"jsonl-{i % 5}@example.com"}],
                "prompt": f"Ticket {i}:",
                "completion": f" printer {i} is jammed",
            }
        )
        for i in range(40)
    ]
    path.write_text("\n".join(lines[:20]) + "\n\n" + "\n".join(lines[20:]) + "\n")
    done = _lethe("records", "import", dataset_id, str(path), "--chunk-size", "100")
    assert done.returncode == 0, done.stderr
    assert "imported 40 records" in done.stdout
    dataset = api.get(f"/v1/datasets/{dataset_id}", headers=portal_headers).json()
    assert dataset["record_counts"] == {"train": 40}
    assert dataset["record_kind"] == "text"

    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"key": "b-0", "identities": _person("jsonl-secret"), "text": "fine"})
        + "\n\n"  # a blank line: rows are named by their line in the file
        + json.dumps({"key": "b-1", "identities": _person("jsonl-secret"), "prompt": "?"})
        + "\n"
    )
    refused = _lethe("records", "import", dataset_id, str(bad))
    assert refused.returncode == 1
    assert "row 3: completion" in refused.stderr
    assert "jsonl-secret" not in refused.stderr + refused.stdout

    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(
        json.dumps({"key": "x-0", "identities": _person("jsonl-secret"), "text": "fine"})
        + "\n\n"
        + json.dumps(
            {"key": "x-1", "identities": _person("jsonl-secret"), "features": [1.0], "label": 0}
        )
        + "\n"
    )
    refused = _lethe("records", "import", dataset_id, str(mixed))
    assert refused.returncode == 1
    assert "row 3: Every record in one call must be of one kind" in refused.stderr


def test_an_erasure_purges_the_persons_text_records(api, portal_headers, session, celery_worker):
    dataset_id = _dataset(api, portal_headers, "chats")
    records = [
        {"key": f"chat-{i}", "identities": _person(f"chat-{i % 2}"), "text": f"message {i}"}
        for i in range(6)
    ]
    assert _post(api, portal_headers, dataset_id, records).status_code == 201
    created = api.post(
        "/v1/erasure-requests", json={"identities": _person("chat-0")}, headers=portal_headers
    )
    assert created.status_code == 202, created.text
    request_id = created.json()["id"]
    wait_for(
        lambda: (
            api.get(f"/v1/erasure-requests/{request_id}", headers=portal_headers).json()["status"]
            == "completed"
        ),
        timeout=60,
    )
    session.rollback()
    left = session.scalars(
        select(TrainingRecord.completion).join(Dataset).where(Dataset.name == "chats")
    ).all()
    assert sorted(left) == ["message 1", "message 3", "message 5"]
    session.rollback()


def test_text_with_copy_format_characters_is_stored_as_sent(api, portal_headers, session):
    odd = "tab\there, back\\slash, \\N, \\x00 as text,\r\nlines\n"
    dataset_id = _dataset(api, portal_headers, name="copy-format")
    response = _post(
        api,
        portal_headers,
        dataset_id,
        [
            {"key": "k\\1", "identities": _person("copy-ann"), "prompt": odd, "completion": odd},
            {"key": "k\\N", "identities": _person("copy-ann"), "text": "\\"},
        ],
    )
    assert response.status_code == 201, response.text
    rows = session.scalars(
        select(TrainingRecord).join(Dataset).where(Dataset.name == "copy-format")
    ).all()
    assert {r.key: (r.prompt, r.completion) for r in rows} == {
        "k\\1": (odd, odd),
        "k\\N": (None, "\\"),
    }
