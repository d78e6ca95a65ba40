"""Input that cannot hurt: control characters, out-of-range integers, non-finite features and
malformed identities are refused with a 422 naming the field, never echoing the value, and
changing nothing."""

from __future__ import annotations

import csv
import json
import uuid

import numpy as np
import pytest

from tests.conftest import table_counts
from tests.lineage.test_import import _lethe

NUL = "sec\x00ret-value"
SECRET = "sec"  # the start of every refused value: never in an answer


@pytest.fixture
def unchanged(session):
    before = table_counts(session)
    yield
    assert table_counts(session) == before


def _refused(response, pointer: str, status: int = 422) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    pointers = [e.get("pointer") or e.get("parameter") for e in body["errors"]]
    assert pointer in pointers, body
    assert "ret-value" not in response.text and "\\u0000" not in response.text
    return next(
        e["detail"] for e in body["errors"] if pointer in (e.get("pointer"), e.get("parameter"))
    )


def _record(**overrides) -> dict:
    return {
        "key": "r-1",
        "identities": [{"type": "email", "value": "safe-input@example.com"}],
        "features": [0.5, 1.0, 0.0],
        "label": 1,
        "split": "train",
    } | overrides


@pytest.fixture(scope="module")
def dataset_id(api, admin_headers) -> str:
    return api.post("/v1/datasets", json={"name": "safety"}, headers=admin_headers).json()["id"]


@pytest.mark.parametrize(
    ("path", "body", "pointer"),
    [
        ("/v1/erasure-requests", {"reference": NUL}, "#/reference"),
        ("/v1/erasure-requests", {"reason": NUL}, "#/reason"),
        ("/v1/erasure-requests", {"reference": "sec\u0085ret-value"}, "#/reference"),
        ("/v1/erasure-requests", {"reference": "sec\nret-value"}, "#/reference"),
        ("/v1/datasets", {"name": NUL}, "#/name"),
        ("/v1/datasets", {"name": "x", "description": NUL}, "#/description"),
    ],
)
def test_control_characters_in_text(api, admin_headers, unchanged, path, body, pointer):
    if path == "/v1/erasure-requests":
        body = {"identities": [{"type": "email", "value": "a@example.com"}]} | body
    detail = _refused(api.post(path, json=body, headers=admin_headers), pointer)
    assert "must not contain" in detail


def test_a_lone_surrogate_is_refused(api, admin_headers, unchanged):
    raw = b'{"identities": [{"type": "email", "value": "a@example.com"}], "reference": "\\ud800"}'
    response = api.post(
        "/v1/erasure-requests",
        content=raw,
        headers=admin_headers | {"content-type": "application/json"},
    )
    _refused(response, "#/reference")


def test_a_reason_may_span_lines(api, admin_headers):
    body = {
        "identities": [{"type": "email", "value": "lines@example.com"}],
        "reason": "Asked by letter.\r\n\tSee the file.",
    }
    assert api.post("/v1/erasure-requests", json=body, headers=admin_headers).status_code == 202


def test_deny_and_extend_reasons(api, admin_headers, unchanged):
    some_id = uuid.uuid4()
    for action, body in (("deny", {"reason": NUL}), ("extend", {"months": 1, "reason": NUL})):
        response = api.post(
            f"/v1/erasure-requests/{some_id}/{action}", json=body, headers=admin_headers
        )
        _refused(response, "#/reason")


def test_record_key_label_and_features(api, admin_headers, dataset_id, unchanged):
    url = f"/v1/datasets/{dataset_id}/records"
    cases = [
        (_record(key=NUL), "#/records/0/key"),
        (_record(label=2**31), "#/records/0/label"),
        (_record(features=[0.5, 1e39, 0.0]), "#/records/0/features/1"),
    ]
    for record, pointer in cases:
        _refused(
            api.post(url, json={"records": [_record(key="ok"), record]}, headers=admin_headers),
            pointer.replace("/0/", "/1/"),
        )
    for literal in ("NaN", "Infinity", "-Infinity"):
        raw = json.dumps({"records": [_record()]}).replace("0.5", literal).encode()
        response = api.post(
            url, content=raw, headers=admin_headers | {"content-type": "application/json"}
        )
        assert "finite" in _refused(response, "#/records/0/features/0")


def test_model_name_and_prediction_features(api, admin_headers, dataset_id, unchanged):
    model = {"name": NUL, "dataset_id": dataset_id, "architecture": "mlp"}
    _refused(api.post("/v1/models", json=model, headers=admin_headers), "#/name")
    raw = b'{"features": [[0.5, NaN, 0.0]]}'
    response = api.post(
        f"/v1/models/{uuid.uuid4()}/predict",
        content=raw,
        headers=admin_headers | {"content-type": "application/json"},
    )
    _refused(response, "#/features/0/1")


def test_integers_beyond_the_database(api, admin_headers):
    response = api.get("/v1/audit/events?after_seq=9223372036854775808", headers=admin_headers)
    _refused(response, "after_seq")
    assert (
        api.get("/v1/audit/events?after_seq=9223372036854775807", headers=admin_headers).status_code
        == 200
    )


def test_opendsr_api_version(api, admin_headers, unchanged):
    body = {
        "subject_request_id": str(uuid.uuid4()),
        "regulation": "gdpr",
        "subject_request_type": "erasure",
        "submitted_time": "2026-10-02T15:00:00Z",
        "subject_identities": [
            {"identity_type": "email", "identity_value": "a@example.com", "identity_format": "raw"}
        ],
        "api_version": "2\x00.0",
    }
    response = api.post("/opendsr/v1/requests", json=body, headers=admin_headers)
    assert response.status_code == 400
    assert response.json()["error"]["errors"][0]["location"] == "#/api_version"


@pytest.mark.parametrize(
    ("type_", "value", "ok"),
    [
        ("email", "Ann.Lee+dsr@Example.co.uk", True),
        ("email", " ann@example.com ", True),
        ("email", "sec-not-an-address", False),
        ("email", "sec@localhost", False),
        ("email", "sec@@example.com", False),
        ("email", "sec ret@example.com", False),
        ("phone", "+442079460958", True),
        ("phone", "sec+44 20 7946 0958", False),
        ("phone", "020 7946 0958", False),
        ("phone", "+0442079460958", False),
        ("android_advertising_id", "38400000-8cf0-11bd-b23e-10b96e40000d", True),
        ("ios_advertising_id", "EA7583CD-A667-48BC-B806-42ECB2B48606", True),
        ("ios_advertising_id", "sec-not-a-uuid", False),
        ("fire_advertising_id", "sec", False),
        ("user_id", "sec-anything-goes-42", True),
        ("user_id", "sec\x00", False),
    ],
)
def test_identity_formats(api, admin_headers, type_, value, ok):
    body = {"identities": [{"type": type_, "value": value}]}
    response = api.post("/v1/erasure-requests", json=body, headers=admin_headers)
    if ok:
        assert response.status_code == 202, response.text
    else:
        _refused(response, "#/identities/0")
        assert value.strip() not in response.text


def test_a_sha256_digest_is_still_accepted(api, admin_headers):
    body = {"identities": [{"type": "phone", "value": "ab" * 32, "format": "sha256"}]}
    assert api.post("/v1/erasure-requests", json=body, headers=admin_headers).status_code == 202


def _csv(path, rows):
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["key", "identity_type", "identity_value", "label", "split", "f0", "f1"])
        writer.writerows(rows)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            ["k-2", "email", "b@example.com", 1, "train", "nan", 1],
            "row 3: feature 0 is not a finite",
        ),
        (
            ["k-2", "email", "b@example.com", 1, "train", 1, "-inf"],
            "row 3: feature 1 is not a finite",
        ),
        (
            ["k-2", "email", "b@example.com", 1, "train", "1e39", 1],
            "row 3: feature 0 is not a finite",
        ),
        (["k-2", "email", "b@example.com", 2**31, "train", 1, 1], "row 3: label must be"),
        (["k\x07-2", "email", "b@example.com", 1, "train", 1, 1], "row 3: key must not contain"),
        (["k-2", "email", "secret-not-an-address", 1, "train", 1, 1], "row 3: an email identity"),
        (["k-2", "phone", "secret 555", 1, "train", 1, 1], "row 3: a phone identity"),
    ],
)
def test_import_refuses_bad_csv_rows(api, admin_headers, dataset_id, tmp_path, bad, message):
    path = tmp_path / "records.csv"
    _csv(path, [["k-1", "email", "a@example.com", 1, "train", 0.5, 1], bad])
    result = _lethe("records", "import", dataset_id, str(path))
    assert result.returncode == 1
    assert message in result.stderr, result.stderr
    assert "secret" not in result.stderr + result.stdout


def test_import_refuses_non_finite_npz_features(api, admin_headers, tmp_path):
    dataset = api.post("/v1/datasets", json={"name": "npz-nan"}, headers=admin_headers).json()
    features = np.ones((3, 2), dtype=np.float64)
    features[2, 1] = np.inf
    path = tmp_path / "records.npz"
    np.savez(
        path,
        keys=np.array(["a", "b", "c"]),
        identity_types=np.array(["user_id"] * 3),
        identity_values=np.array(["u1", "u2", "u3"]),
        labels=np.array([0, 1, 2**40]),
        splits=np.array(["train"] * 3),
        features=features,
    )
    result = _lethe("records", "import", dataset["id"], str(path))
    assert result.returncode == 1
    assert "row 2: label must be an integer from 0 to 2147483647" in result.stderr
    labels_ok = path.with_name("ok-labels.npz")
    np.savez(
        labels_ok,
        keys=np.array(["a", "b", "c"]),
        identity_types=np.array(["user_id"] * 3),
        identity_values=np.array(["u1", "u2", "u3"]),
        labels=np.array([0, 1, 2]),
        splits=np.array(["train"] * 3),
        features=features,
    )
    result = _lethe("records", "import", dataset["id"], str(labels_ok))
    assert result.returncode == 1
    assert "row 2: feature 1 is not a finite number" in result.stderr
    shown = api.get(f"/v1/datasets/{dataset['id']}", headers=admin_headers).json()
    assert shown["record_counts"] == {}
