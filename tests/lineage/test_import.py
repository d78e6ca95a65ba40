"""`lethe records import` from CSV and NPZ files, as a real subprocess."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np


def _lethe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from app.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
    )


def _dataset(api, headers) -> str:
    return api.post("/v1/datasets", json={"name": "imported"}, headers=headers).json()["id"]


def test_import_csv(api, portal_headers, tmp_path):
    dataset_id = _dataset(api, portal_headers)
    path = tmp_path / "records.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["key", "identity_type", "identity_value", "label", "split", "f0", "f1", "f2"]
        )
        for i in range(250):
            writer.writerow(
                [
                    f"csv-{i}",
                    "email",
                    f"csv-person-{i % 50}@example.com",
                    i % 3,
                    "train",
                    i,
                    0.5,
                    -1,
                ]
            )
    result = _lethe("records", "import", dataset_id, str(path), "--chunk-size", "100")
    assert result.returncode == 0, result.stderr
    assert "imported 250 records" in result.stdout
    shown = api.get(f"/v1/datasets/{dataset_id}", headers=portal_headers).json()
    assert shown["record_counts"] == {"train": 250}
    assert shown["feature_count"] == 3


def test_import_npz(api, portal_headers, tmp_path):
    dataset_id = _dataset(api, portal_headers)
    n = 1000
    path = tmp_path / "records.npz"
    np.savez(
        path,
        keys=np.array([f"npz-{i}" for i in range(n)]),
        identity_types=np.array(["user_id"] * n),
        identity_values=np.array([f"npz-user-{i // 10}" for i in range(n)]),
        labels=np.arange(n) % 5,
        splits=np.array(["train", "holdout"] * (n // 2)),
        features=np.random.default_rng(0).normal(size=(n, 16)).astype(np.float32),
    )
    result = _lethe("records", "import", dataset_id, str(path))
    assert result.returncode == 0, result.stderr
    shown = api.get(f"/v1/datasets/{dataset_id}", headers=portal_headers).json()
    assert shown["record_counts"] == {"train": 500, "holdout": 500}


def test_import_reports_bad_row_without_the_identity(api, portal_headers, tmp_path):
    dataset_id = _dataset(api, portal_headers)
    path = tmp_path / "bad.csv"
    path.write_text(
        "key,identity_type,identity_value,label,split,f0\n"
        "ok-1,email,fine@example.com,1,train,0.1\n"
        "bad-1,email,very-secret@example.com,1,training,0.1\n"
    )
    result = _lethe("records", "import", dataset_id, str(path))
    assert result.returncode == 1
    assert "row 3: split must be one of" in result.stderr
    assert "very-secret" not in result.stderr + result.stdout
    shown = api.get(f"/v1/datasets/{dataset_id}", headers=portal_headers).json()
    assert shown["record_counts"] == {}


def test_import_npz_names_the_bad_row(api, portal_headers, tmp_path):
    dataset_id = _dataset(api, portal_headers)
    n = 50
    splits = np.array(["train"] * n)
    splits[37] = "validation"
    path = tmp_path / "bad.npz"
    np.savez(
        path,
        keys=np.array([f"bad-{i}" for i in range(n)]),
        identity_types=np.array(["email"] * n),
        identity_values=np.array([f"hidden-{i}@example.com" for i in range(n)]),
        labels=np.arange(n),
        splits=splits,
        features=np.zeros((n, 4), dtype=np.float32),
    )
    result = _lethe("records", "import", dataset_id, str(path))
    assert result.returncode == 1
    assert "row 37: split must be one of" in result.stderr
    assert "hidden-" not in result.stderr + result.stdout
