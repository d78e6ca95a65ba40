"""The lineage benchmark's records, generated in chunks: an NPZ file for `lethe records import`
and, for the same rows, the bare COPY files of its baseline (subjects, identities and records
already hashed).

Subjects own a skewed number of records (geometric, mean ~4); one owns exactly 100, at random
positions. Every chunk's arrays come from a generator seeded by (seed, chunk), so the NPZ file and
the COPY files hold the same rows; no array of strings or features is ever whole in memory.
"""

from __future__ import annotations

import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TARGET_USER = "bench-target-user"
TARGET_RECORDS = 100
FEATURES = 32
CHUNK = 200_000
_TARGET = -1  # the owner number of the target person


@dataclass(frozen=True)
class RecordChunk:
    start: int
    keys: np.ndarray  # str
    owners: np.ndarray  # int64, _TARGET for the target person
    labels: np.ndarray
    splits: np.ndarray  # str
    features: np.ndarray  # float32, n x FEATURES


def owners_of(*, records: int, seed: int) -> np.ndarray:
    """The owner number of each record position (int64; only integers are whole in memory)."""
    rng = np.random.default_rng(seed)
    counts = rng.geometric(0.25, size=records)
    owners = np.repeat(np.arange(records, dtype=np.int64), counts)[: records - TARGET_RECORDS]
    owners = np.concatenate([owners, np.full(TARGET_RECORDS, _TARGET, dtype=np.int64)])
    return owners[rng.permutation(records)]


def identity_value(owner: int) -> str:
    return TARGET_USER if owner == _TARGET else f"bench-user-{owner}"


def _values(owners: np.ndarray, width: int) -> np.ndarray:
    values = np.char.add("bench-user-", owners.astype(str)).astype(f"<U{width}")
    values[owners == _TARGET] = TARGET_USER
    return values


def chunks(*, owners: np.ndarray, seed: int) -> Iterator[RecordChunk]:
    for start in range(0, len(owners), CHUNK):
        stop = min(start + CHUNK, len(owners))
        rng = np.random.default_rng([seed, start])
        yield RecordChunk(
            start=start,
            keys=np.char.add("r", np.arange(start, stop).astype(str)),
            owners=owners[start:stop],
            labels=rng.integers(0, 100, size=stop - start),
            splits=rng.choice(
                np.array(["train", "holdout", "test"]), size=stop - start, p=[0.8, 0.1, 0.1]
            ),
            features=rng.normal(size=(stop - start, FEATURES)).astype(np.float32),
        )


def write_npz(path: Path, *, owners: np.ndarray, seed: int) -> None:
    """The NPZ file `lethe records import` reads, written through memory-mapped .npy files."""
    n = len(owners)
    value_width = max(len(TARGET_USER), len(f"bench-user-{n}"))
    layout: dict[str, tuple[str, tuple[int, ...]]] = {
        "keys": (f"<U{len(f'r{n}')}", (n,)),
        "identity_types": ("<U7", (n,)),
        "identity_values": (f"<U{value_width}", (n,)),
        "labels": ("<i8", (n,)),
        "splits": ("<U7", (n,)),
        "features": ("<f4", (n, FEATURES)),
    }
    parts = path.parent / f"{path.stem}-parts"
    parts.mkdir()
    arrays = {
        name: np.lib.format.open_memmap(
            parts / f"{name}.npy", mode="w+", dtype=np.dtype(dtype), shape=shape
        )
        for name, (dtype, shape) in layout.items()
    }
    for chunk in chunks(owners=owners, seed=seed):
        rows = slice(chunk.start, chunk.start + len(chunk.keys))
        arrays["keys"][rows] = chunk.keys
        arrays["identity_types"][rows] = "user_id"
        arrays["identity_values"][rows] = _values(chunk.owners, value_width)
        arrays["labels"][rows] = chunk.labels
        arrays["splits"][rows] = chunk.splits
        arrays["features"][rows] = chunk.features
    for array in arrays.values():
        array.flush()
    del arrays
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name in layout:
            archive.write(parts / f"{name}.npy", arcname=f"{name}.npy")
            (parts / f"{name}.npy").unlink()
    parts.rmdir()


@dataclass(frozen=True)
class CopyFiles:
    subjects: Path
    identities: Path
    records: Path


def write_copy_files(
    folder: Path,
    *,
    owners: np.ndarray,
    seed: int,
    dataset_id: uuid.UUID,
    pepper: bytes,
    created_at: str,
) -> CopyFiles:
    """The same rows as COPY text files, identities already hashed, subjects already chosen."""
    from app.lineage.identity import IdentityFormat, IdentityType, identity_hash

    files = CopyFiles(
        subjects=folder / "subjects.copy",
        identities=folder / "identities.copy",
        records=folder / "records.copy",
    )
    distinct = np.unique(owners)
    subject_of = {int(o): str(uuid.uuid4()) for o in distinct}
    with files.subjects.open("w") as subjects, files.identities.open("w") as identities:
        for owner, subject in subject_of.items():
            hashed = identity_hash(
                pepper=pepper,
                identity_type=IdentityType.USER_ID,
                value=identity_value(owner),
                identity_format=IdentityFormat.RAW,
            )
            subjects.write(f"{subject}\t{created_at}\n")
            identities.write(f"{subject}\tuser_id\t{hashed}\n")
    with files.records.open("w") as out:
        for chunk in chunks(owners=owners, seed=seed):
            raw = chunk.features.astype("<f4").tobytes()
            width = FEATURES * 4
            out.writelines(
                f"{dataset_id}\t{key}\t{subject_of[int(owner)]}\t{split}\t{label}"
                f"\t\\\\x{raw[i * width : (i + 1) * width].hex()}\t\\N\t\\N\t{created_at}\n"
                for i, (key, owner, split, label) in enumerate(
                    zip(
                        chunk.keys.tolist(),
                        chunk.owners.tolist(),
                        chunk.splits.tolist(),
                        chunk.labels.tolist(),
                        strict=True,
                    )
                )
            )
    return files
