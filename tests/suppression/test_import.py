"""`lethe records import` applies the API's rule: a row of a person erased on request is
refused, naming the row and never the value, unless the row states a lawful basis."""

from __future__ import annotations

import csv

from typer.testing import CliRunner

from app.cli import cli
from tests.suppression.helpers import erase

HEADER = ["key", "identity_type", "identity_value", "label", "split", "f0", "lawful_basis"]


def _write(path, rows: list[list[str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)


def test_import_refuses_an_erased_person_unless_the_row_has_a_lawful_basis(
    api, portal_headers, tmp_path, enqueued
):
    email = "imported-then-erased@example.com"
    dataset_id = api.post("/v1/datasets", json={"name": "imp"}, headers=portal_headers).json()["id"]
    erase(api, portal_headers, email)
    path = tmp_path / "records.csv"
    runner = CliRunner()

    _write(
        path,
        [
            ["i-1", "email", "someone@example.com", "0", "train", "1", ""],
            ["i-2", "email", email, "1", "train", "2", ""],
        ],
    )
    refused = runner.invoke(cli, ["records", "import", dataset_id, str(path)])
    assert refused.exit_code == 1
    assert "row 3: identity erased on request" in refused.output
    assert "0 records were imported" in refused.output
    assert "imported-then-erased" not in refused.output

    _write(
        path,
        [
            ["i-1", "email", "someone@example.com", "0", "train", "1", ""],
            ["i-2", "email", email, "1", "train", "2", "legal_obligation"],
        ],
    )
    accepted = runner.invoke(cli, ["records", "import", dataset_id, str(path)])
    assert accepted.exit_code == 0, accepted.output
    shown = api.get(f"/v1/datasets/{dataset_id}", headers=portal_headers).json()
    assert shown["record_counts"] == {"train": 2} and shown["feature_count"] == 1


def test_a_refused_json_lines_row_is_named_by_its_file_line(
    api, portal_headers, tmp_path, enqueued
):
    import json

    email = "jsonl-then-erased@example.com"
    dataset_id = api.post("/v1/datasets", json={"name": "j"}, headers=portal_headers).json()["id"]
    erase(api, portal_headers, email)
    path = tmp_path / "records.jsonl"

    def line(key: str, value: str) -> str:
        return json.dumps(
            {"key": key, "identities": [{"type": "email", "value": value}], "text": "a note"}
        )

    # Blank lines before the erased person's record: the error names line 5, not record 2.
    path.write_text(line("j-1", "someone@example.com") + "\n\n\n\n" + line("j-2", email) + "\n")
    refused = CliRunner().invoke(cli, ["records", "import", dataset_id, str(path)])
    assert refused.exit_code == 1
    assert "row 5: identity erased on request" in refused.output
    assert "jsonl-then-erased" not in refused.output
