"""Lists of datasets, models and jobs page like erasure requests: newest first, an opaque
cursor, scoped to the caller's client (an admin sees every client's)."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture(scope="module")
def owner(make_key) -> dict[str, str]:
    key = make_key(["lineage:write", "models:write", "requests:write", "requests:read"])
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def stranger(make_key) -> dict[str, str]:
    key = make_key(["lineage:write", "models:write", "requests:write", "requests:read"])
    return {"Authorization": f"Bearer {key}"}


def _all_pages(api, url: str, headers: dict[str, str], limit: int) -> list[list[dict]]:
    pages, cursor = [], None
    while True:
        sep = "&" if "?" in url else "?"
        page_url = f"{url}{sep}limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        response = api.get(page_url, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


def test_datasets_models_and_jobs_page_per_client(api, owner, stranger, admin_headers):
    datasets = [
        api.post("/v1/datasets", json={"name": f"list-{i}"}, headers=owner).json()["id"]
        for i in range(3)
    ]
    theirs = api.post("/v1/datasets", json={"name": "theirs"}, headers=stranger).json()["id"]
    record = {
        "key": "k-1",
        "identities": [{"type": "user_id", "value": "list-person"}],
        "features": [0.1, 0.2],
        "label": 0,
    }
    added = api.post(
        f"/v1/datasets/{datasets[0]}/records", json={"records": [record]}, headers=owner
    )
    assert added.status_code == 201

    pages = _all_pages(api, "/v1/datasets", owner, limit=2)
    assert [len(p) for p in pages] == [2, 1]
    listed = [d["id"] for p in pages for d in p]
    assert listed == list(reversed(datasets))  # newest first
    assert pages[1][0]["record_counts"] == {"train": 1}
    everyone = [d["id"] for p in _all_pages(api, "/v1/datasets", admin_headers, 200) for d in p]
    assert set(datasets) | {theirs} <= set(everyone)

    models = [
        api.post(
            "/v1/models",
            json={"name": f"m-{i}", "dataset_id": d, "architecture": "mlp", "strategy": "retrain"},
            headers=owner,
        ).json()["id"]
        for i, d in enumerate(datasets[:2])
    ]
    pages = _all_pages(api, "/v1/models", owner, limit=1)
    assert [m["id"] for p in pages for m in p] == list(reversed(models))
    one = api.get(f"/v1/models?dataset_id={datasets[0]}", headers=owner).json()
    assert [m["id"] for m in one["items"]] == [models[0]]
    assert api.get("/v1/models", headers=stranger).json()["items"] == []

    job = api.post(f"/v1/models/{models[0]}/train", headers=owner).json()
    jobs = api.get(f"/v1/jobs?model_id={models[0]}&kind=train", headers=owner).json()
    assert [j["id"] for j in jobs["items"]] == [job["id"]]
    assert api.get(f"/v1/jobs?model_id={models[0]}", headers=stranger).json()["items"] == []
    assert api.get("/v1/jobs?kind=unlearn&status=running", headers=owner).json()["items"] == []
    assert api.get("/v1/jobs?status=bogus", headers=owner).status_code == 422


def test_erasure_requests_by_reference(api, owner, stranger):
    reference = f"DSR-{uuid.uuid4().hex[:8]}"
    created = api.post(
        "/v1/erasure-requests",
        json={"identities": [{"type": "user_id", "value": "ref-person"}], "reference": reference},
        headers=owner,
    ).json()
    api.post(
        "/v1/erasure-requests",
        json={"identities": [{"type": "user_id", "value": "ref-person"}], "reference": "other"},
        headers=owner,
    )
    found = api.get(f"/v1/erasure-requests?reference={reference}", headers=owner).json()
    assert [r["id"] for r in found["items"]] == [created["id"]]
    hidden = api.get(f"/v1/erasure-requests?reference={reference}", headers=stranger).json()
    assert hidden["items"] == []


def test_a_bad_cursor_is_a_problem(api, owner):
    response = api.get("/v1/datasets?cursor=not-ours", headers=owner)
    assert response.status_code == 422
    assert response.json()["errors"][0]["parameter"] == "cursor"
