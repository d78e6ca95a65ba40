"""Datasets and training records over the API, and identity hashing."""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pytest
from sqlalchemy import select

from app.lineage.identity import (
    IdentityError,
    IdentityErrorAt,
    IdentityFormat,
    IdentityType,
    identity_hash,
    identity_hashes,
)
from app.lineage.models import SubjectIdentity, TrainingRecord
from tests.conftest import table_counts


def _records(n: int, *, prefix: str, features: int = 32) -> list[dict]:
    return [
        {
            "key": f"{prefix}-{i}",
            "identities": [{"type": "user_id", "value": f"{prefix}-user-{i % (n // 4 or 1)}"}],
            "features": [float(i % 7)] * features,
            "label": i % 10,
            "split": ("train", "holdout", "test")[i % 3],
        }
        for i in range(n)
    ]


def test_identity_hash_is_keyed_and_accepts_prehashed():
    pepper = b"pepper"
    raw = identity_hash(
        pepper=pepper,
        identity_type=IdentityType.EMAIL,
        value=" Ann@X.org ",
        identity_format=IdentityFormat.RAW,
    )
    inner = hashlib.sha256(b"ann@x.org").hexdigest()
    assert raw == hmac.new(pepper, inner.encode(), hashlib.sha256).hexdigest()
    pre = identity_hash(
        pepper=pepper,
        identity_type=IdentityType.EMAIL,
        value=inner,
        identity_format=IdentityFormat.SHA256,
    )
    assert pre == raw
    other_pepper = identity_hash(
        pepper=b"other",
        identity_type=IdentityType.EMAIL,
        value="ann@x.org",
        identity_format=IdentityFormat.RAW,
    )
    assert other_pepper != raw
    # Only e-mail addresses are normalized; other types are hashed as given.
    user = identity_hash(
        pepper=pepper,
        identity_type=IdentityType.USER_ID,
        value=" U-1 ",
        identity_format=IdentityFormat.RAW,
    )
    assert user != identity_hash(
        pepper=pepper,
        identity_type=IdentityType.USER_ID,
        value="u-1",
        identity_format=IdentityFormat.RAW,
    )
    # A phone number must be in E.164; the error never quotes it.
    with pytest.raises(IdentityError) as refused:
        identity_hash(
            pepper=pepper,
            identity_type=IdentityType.PHONE,
            value=" +44 20 7946 0958 ",
            identity_format=IdentityFormat.RAW,
        )
    assert "7946" not in str(refused.value)


def test_identity_hashes_match_one_by_one_and_name_the_bad_position():
    raw, sha = IdentityFormat.RAW, IdentityFormat.SHA256
    batch = [
        (IdentityType.EMAIL, " Ann@Example.com", raw),
        (IdentityType.USER_ID, "u-1", raw),
        (IdentityType.USER_ID, "a" * 64, sha),
    ]
    assert identity_hashes(pepper=b"p", identities=batch) == [
        identity_hash(pepper=b"p", identity_type=t, value=v, identity_format=f) for t, v, f in batch
    ]
    with pytest.raises(IdentityErrorAt) as found:
        identity_hashes(pepper=b"p", identities=[*batch, (IdentityType.USER_ID, "u\x07", raw)])
    assert found.value.position == 3
    with pytest.raises(IdentityErrorAt) as empty:
        identity_hashes(pepper=b"p", identities=[*batch, (IdentityType.USER_ID, "", raw)])
    assert empty.value.position == 3
    assert "u\x07" not in str(found.value)


def test_ten_thousand_records_in_one_call(api, portal_headers, session):
    dataset = api.post("/v1/datasets", json={"name": "bulk"}, headers=portal_headers).json()
    response = api.post(
        f"/v1/datasets/{dataset['id']}/records",
        json={"records": _records(10_000, prefix="bulk")},
        headers=portal_headers,
    )
    assert response.status_code == 201, response.text
    assert response.json() == {"dataset_id": dataset["id"], "added": 10_000, "new_subjects": 2_500}
    shown = api.get(f"/v1/datasets/{dataset['id']}", headers=portal_headers).json()
    assert shown["feature_count"] == 32
    assert sum(shown["record_counts"].values()) == 10_000
    stored = session.scalar(select(TrainingRecord).where(TrainingRecord.key == "bulk-8"))
    assert np.frombuffer(stored.features, dtype="<f4").tolist() == [1.0] * 32
    assert stored.split == "test" and stored.label == 8
    hashes = session.scalars(select(SubjectIdentity.hash).limit(50)).all()
    assert all(len(h) == 64 for h in hashes)
    assert "bulk-user" not in str(hashes)


def test_duplicate_key_and_wrong_feature_count_change_nothing(api, portal_headers, session):
    dataset = api.post("/v1/datasets", json={"name": "dups"}, headers=portal_headers).json()
    url = f"/v1/datasets/{dataset['id']}/records"
    assert (
        api.post(url, json={"records": _records(8, prefix="d")}, headers=portal_headers).status_code
        == 201
    )
    before = table_counts(session)
    dup = api.post(
        url,
        json={"records": _records(4, prefix="new") + _records(2, prefix="d")},
        headers=portal_headers,
    )
    assert dup.status_code == 409
    assert dup.json()["errors"][0]["pointer"] == "#/records/4/key"
    wrong = api.post(
        url, json={"records": _records(4, prefix="w", features=5)}, headers=portal_headers
    )
    assert wrong.status_code == 422
    mixed = _records(2, prefix="m")
    mixed[1]["features"] = [1.0]
    response = api.post(url, json={"records": mixed}, headers=portal_headers)
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"pointer": "#/records/1/features", "detail": "wrong length"}
    ]
    assert table_counts(session) == before


def test_other_clients_dataset_is_404(api, portal_headers, make_key):
    dataset = api.post("/v1/datasets", json={"name": "mine"}, headers=portal_headers).json()
    other = {"Authorization": f"Bearer {make_key(['lineage:write'])}"}
    response = api.post(
        f"/v1/datasets/{dataset['id']}/records",
        json={"records": _records(4, prefix="o")},
        headers=other,
    )
    assert response.status_code == 404
