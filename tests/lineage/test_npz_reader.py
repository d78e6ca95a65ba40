"""Reading an NPZ file chunk by chunk, hashing identities by column, and looking rows up by hash."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from app.lineage.bulk import existing_subjects, rows_by_hash
from app.lineage.identity import (
    IdentityErrorAt,
    IdentityFormat,
    IdentityType,
    identity_hash,
    identity_hashes_of,
)
from app.lineage.importer import ImportFileError, count_rows, read_npz
from app.lineage.models import DataSubject, SubjectIdentity

PEPPER = b"pepper"


def _arrays(n: int) -> dict[str, np.ndarray]:
    return {
        "keys": np.array([f"k-{i}" for i in range(n)]),
        "identity_types": np.array(["user_id", "email"] * (n // 2)),
        "identity_values": np.array([f"p{i % 7}@example.com" for i in range(n)]),
        "labels": np.arange(n) % 3,
        "splits": np.array(["train", "test"] * (n // 2)),
        "features": np.arange(n * 4, dtype=np.float64).reshape(n, 4),
    }


def _read(path: Path, chunk_size: int) -> list[tuple[int, list]]:
    return [
        (chunk.first_row, chunk.rows)
        for chunk in read_npz(path, pepper=PEPPER, chunk_size=chunk_size)
    ]


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_chunks_hold_the_files_rows(tmp_path, save):
    n = 250
    arrays = _arrays(n)
    path = tmp_path / "records.npz"
    save(path, **arrays)
    chunks = _read(path, 100)
    assert [first for first, _ in chunks] == [0, 100, 200]
    rows = [row for _, part in chunks for row in part]
    assert count_rows(path) == n
    assert [r.key for r in rows] == arrays["keys"].tolist()
    assert [r.label for r in rows] == arrays["labels"].tolist()
    assert [r.split for r in rows] == arrays["splits"].tolist()
    features = np.frombuffer(b"".join(r.features for r in rows), dtype="<f4").reshape(n, 4)
    assert np.array_equal(features, arrays["features"].astype(np.float32))
    assert [r.identities for r in rows] == [
        (
            (
                t,
                identity_hash(
                    pepper=PEPPER,
                    identity_type=IdentityType(t),
                    value=v,
                    identity_format=IdentityFormat.RAW,
                ),
            ),
        )
        for t, v in zip(arrays["identity_types"], arrays["identity_values"], strict=True)
    ]
    assert all(r.lawful_basis is None for r in rows)


def test_fortran_ordered_and_text_features_are_read(tmp_path):
    arrays = _arrays(10)
    plain = tmp_path / "plain.npz"
    np.savez(plain, **arrays)
    fortran = tmp_path / "fortran.npz"
    np.savez(fortran, **(arrays | {"features": np.asfortranarray(arrays["features"])}))
    text = tmp_path / "text.npz"
    np.savez(text, **(arrays | {"features": arrays["features"].astype(str)}))
    expected = [r.features for _, part in _read(plain, 3) for r in part]
    for path in (fortran, text):
        assert [r.features for _, part in _read(path, 3) for r in part] == expected


def test_lawful_bases_are_read_per_row(tmp_path):
    arrays = _arrays(4)
    path = tmp_path / "bases.npz"
    np.savez(path, **arrays, lawful_bases=np.array(["", "consent", "", ""]))
    rows = _read(path, 10)[0][1]
    assert [r.lawful_basis and r.lawful_basis.basis.value for r in rows] == [
        None,
        "consent",
        None,
        None,
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"labels": np.arange(9)}, "arrays must all have the same length"),
        ({"features": np.zeros(10)}, "features must be n x d"),
        ({"features": np.array([["x"] * 2] * 10)}, "features must be a numeric n x d array"),
        ({"splits": np.array(["train"] * 9 + ["dev"])}, "row 9: split must be one of"),
    ],
)
def test_problems_are_named_before_or_at_their_row(tmp_path, change, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **(_arrays(10) | change))
    with pytest.raises(ImportFileError, match=message):
        _read(path, 4)


def test_missing_and_object_arrays_are_refused(tmp_path):
    arrays = _arrays(4)
    missing = tmp_path / "missing.npz"
    np.savez(missing, **{k: v for k, v in arrays.items() if k != "labels"})
    with pytest.raises(ImportFileError, match="missing array"):
        _read(missing, 10)
    objects = tmp_path / "objects.npz"
    np.savez(objects, **(arrays | {"keys": np.array(["a", "b", "c", "d"], dtype=object)}))
    with pytest.raises(ImportFileError, match="array keys holds Python objects"):
        _read(objects, 10)
    not_zip = tmp_path / "not.npz"
    not_zip.write_bytes(b"plain text")
    with pytest.raises(ImportFileError, match="not an NPZ file"):
        _read(not_zip, 10)


def test_hashes_by_column_match_one_by_one_and_name_the_bad_position():
    cases = [
        (["user_id", "user_id"], ["u-1", "u-2"], ["raw", "raw"]),  # the one-pass path
        (["email", "user_id"], [" Ann@Example.com", "a" * 64], ["raw", "sha256"]),
    ]
    for types, values, formats in cases:
        assert identity_hashes_of(pepper=PEPPER, types=types, values=values, formats=formats) == [
            identity_hash(
                pepper=PEPPER,
                identity_type=IdentityType(t),
                value=v,
                identity_format=IdentityFormat(f),
            )
            for t, v, f in zip(types, values, formats, strict=True)
        ]
    for bad in ("", "u\x07"):
        with pytest.raises(IdentityErrorAt) as found:
            identity_hashes_of(
                pepper=PEPPER, types=["user_id"] * 3, values=["a", "b", bad], formats=["raw"] * 3
            )
        assert found.value.position == 2
        assert "u\x07" not in str(found.value)


def test_rows_by_hash_finds_each_hash_once_and_takes_commas(session):
    subject = uuid.uuid4()
    plain, comma = uuid.uuid4().hex * 2, "odd,hash"
    session.add(DataSubject(id=subject))
    session.flush()
    session.add_all(
        [
            SubjectIdentity(subject_id=subject, type="user_id", hash=plain),
            SubjectIdentity(subject_id=subject, type="email", hash=comma),
        ]
    )
    session.flush()
    absent = uuid.uuid4().hex * 2
    found = rows_by_hash(session, SubjectIdentity, ("type", "hash"), [plain, absent, plain])
    assert found == [("user_id", plain)]
    assert sorted(rows_by_hash(session, SubjectIdentity, ("type", "hash"), [plain, comma])) == [
        ("email", comma),
        ("user_id", plain),
    ]
    owners = existing_subjects(session, [("user_id", plain), ("user_id", absent)])
    assert owners == {("user_id", plain): subject}
    session.rollback()
