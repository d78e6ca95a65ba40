"""Reading training records from CSV or NPZ files for `lethe records import` (JSON lines, the
format for text records, is read by `app.lineage.jsonl_import`).

CSV: a header row with the columns `key`, `identity_type`, `identity_value`, `label`, `split`
and optionally `identity_format`, `lawful_basis` and `lawful_basis_note`; every other column is
a feature, in file order.
NPZ: arrays `keys`, `identity_types`, `identity_values`, `labels`, `splits`, `features`
(n x d, numeric) and optionally `identity_formats`, `lawful_bases` and `lawful_basis_notes`.
A row's lawful basis (empty for none) is needed only for a person erased on request, as the
API's `lawful_basis` of a record.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.core.validation import FLOAT32_MAX, INT32_MAX, text_problem
from app.lineage.bulk import RecordRow
from app.lineage.identity import (
    IdentityError,
    IdentityErrorAt,
    IdentityFormat,
    IdentityType,
    identity_hash,
    identity_hashes,
)
from app.lineage.models import SPLITS
from app.suppression.enums import LawfulBasis
from app.suppression.service import BasisClaim

REQUIRED_COLUMNS = ("key", "identity_type", "identity_value", "label", "split")
OPTIONAL_COLUMNS = ("identity_format", "lawful_basis", "lawful_basis_note")
NOTE_MAX = 2000


_IDENTITY_TYPES = {t.value: t for t in IdentityType}
_IDENTITY_FORMATS = {f.value: f for f in IdentityFormat}

LABEL_RULE = f"label must be an integer from 0 to {INT32_MAX}"


class ImportFileError(ValueError):
    """A problem in the file, naming the row and column but never the identity value."""


def _check_key(key: str, line: int) -> None:
    if not key or len(key) > 200:
        raise ImportFileError(f"row {line}: key must be 1 to 200 characters")
    problem = text_problem(key)
    if problem is not None:
        raise ImportFileError(f"row {line}: key {problem}")


def _check_keys(keys: list[str], first: int) -> None:
    """`_check_key` of each; the text of all keys is searched once, together, and row by row
    only when something is wrong."""
    if all(0 < len(k) <= 200 for k in keys) and text_problem("".join(keys)) is None:
        return
    for i, key in enumerate(keys):
        _check_key(key, first + i)


def _check_features(features: np.ndarray, first: int) -> None:
    """Every value finite once stored as float32 (NaN, infinities and overflows refused)."""
    finite = np.isfinite(features)
    if not finite.all():
        row, column = (int(i) for i in np.argwhere(~finite)[0])
        raise ImportFileError(
            f"row {first + row}: feature {column} is not a finite number "
            f"(NaN, infinite, or beyond ±{FLOAT32_MAX:.4g})"
        )


def _claim(line: int, basis: str, note: str) -> BasisClaim | None:
    """A row's lawful basis: none when both cells are empty."""
    if not basis:
        if note:
            raise ImportFileError(f"row {line}: lawful_basis_note needs a lawful_basis")
        return None
    try:
        lawful = LawfulBasis(basis)
    except ValueError:
        allowed = ", ".join(b.value for b in LawfulBasis)
        raise ImportFileError(f"row {line}: lawful_basis must be one of {allowed}") from None
    problem = text_problem(note, multiline=True)
    if problem is not None:
        raise ImportFileError(f"row {line}: lawful_basis_note {problem}")
    if len(note) > NOTE_MAX:
        raise ImportFileError(f"row {line}: lawful_basis_note is over {NOTE_MAX} characters")
    return BasisClaim(basis=lawful, note=note or None)


@dataclass(frozen=True)
class Chunk:
    rows: list[RecordRow]
    feature_count: int | None  # None for text records
    first_row: int


def _row(
    *,
    pepper: bytes,
    line: int,
    key: str,
    identity_type: str,
    identity_value: str,
    identity_format: str,
    label: str,
    split: str,
    features: np.ndarray,
    basis: str = "",
    note: str = "",
) -> RecordRow:
    try:
        type_ = IdentityType(identity_type)
    except ValueError:
        raise ImportFileError(f"row {line}: unknown identity_type {identity_type[:40]!r}") from None
    try:
        format_ = IdentityFormat(identity_format or "raw")
    except ValueError:
        raise ImportFileError(f"row {line}: identity_format must be raw or sha256") from None
    if split not in SPLITS:
        raise ImportFileError(f"row {line}: split must be one of {', '.join(SPLITS)}")
    _check_key(key, line)
    try:
        label_int = int(label)
    except ValueError:
        raise ImportFileError(f"row {line}: {LABEL_RULE}") from None
    if not 0 <= label_int <= INT32_MAX:
        raise ImportFileError(f"row {line}: {LABEL_RULE}")
    try:
        hashed = identity_hash(
            pepper=pepper, identity_type=type_, value=identity_value, identity_format=format_
        )
    except IdentityError as exc:
        raise ImportFileError(f"row {line}: {exc}") from None
    return RecordRow(
        key=key,
        identities=((type_.value, hashed),),
        features=features.astype("<f4", copy=False).tobytes(),
        label=label_int,
        split=split,
        lawful_basis=_claim(line, basis, note),
    )


def read_csv(path: Path, *, pepper: bytes, chunk_size: int) -> Iterator[Chunk]:
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ImportFileError("the file is empty")
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise ImportFileError(f"missing column(s): {', '.join(missing)}")
        col = {name: i for i, name in enumerate(header)}
        feature_cols = [
            i for i, n in enumerate(header) if n not in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)
        ]
        if not feature_cols:
            raise ImportFileError("no feature columns")
        buffer: list[list[str]] = []
        first = 2
        line = 1
        for line, record in enumerate(reader, start=2):
            if len(record) != len(header):
                raise ImportFileError(
                    f"row {line}: {len(record)} columns, header has {len(header)}"
                )
            buffer.append(record)
            if len(buffer) == chunk_size:
                yield _csv_chunk(buffer, col, feature_cols, pepper, first)
                buffer, first = [], line + 1
        if buffer:
            yield _csv_chunk(buffer, col, feature_cols, pepper, first)


def _csv_chunk(
    buffer: list[list[str]],
    col: dict[str, int],
    feature_cols: list[int],
    pepper: bytes,
    first: int,
) -> Chunk:
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            features = np.array([[r[i] for i in feature_cols] for r in buffer], dtype=np.float32)
    except ValueError:
        raise ImportFileError(
            f"rows {first}-{first + len(buffer) - 1}: non-numeric feature"
        ) from None
    _check_features(features, first)

    def cell(record: list[str], name: str, default: str = "") -> str:
        return record[col[name]] if name in col else default

    rows = [
        _row(
            pepper=pepper,
            line=first + n,
            key=r[col["key"]],
            identity_type=r[col["identity_type"]],
            identity_value=r[col["identity_value"]],
            identity_format=cell(r, "identity_format", "raw"),
            label=r[col["label"]],
            split=r[col["split"]],
            features=features[n],
            basis=cell(r, "lawful_basis"),
            note=cell(r, "lawful_basis_note"),
        )
        for n, r in enumerate(buffer)
    ]
    return Chunk(rows=rows, feature_count=len(feature_cols), first_row=first)


def read_npz(path: Path, *, pepper: bytes, chunk_size: int) -> Iterator[Chunk]:
    with np.load(path, allow_pickle=False) as data:
        needed = ("keys", "identity_types", "identity_values", "labels", "splits", "features")
        missing = [n for n in needed if n not in data.files]
        if missing:
            raise ImportFileError(f"missing array(s): {', '.join(missing)}")
        arrays = {n: data[n] for n in data.files}
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            features = np.asarray(arrays["features"], dtype=np.float32)
    except (TypeError, ValueError):
        raise ImportFileError("features must be a numeric n x d array") from None
    n = len(arrays["keys"])
    if features.ndim != 2 or any(len(arrays[k]) != n for k in needed):
        raise ImportFileError("arrays must all have the same length and features must be n x d")
    formats = arrays.get("identity_formats")
    optional = ("identity_formats", "lawful_bases", "lawful_basis_notes")
    if any(name in arrays and len(arrays[name]) != n for name in optional):
        raise ImportFileError("arrays must all have the same length and features must be n x d")
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        yield Chunk(
            rows=_npz_rows(arrays, formats, features, start, stop, pepper),
            feature_count=features.shape[1],
            first_row=start,
        )


def _first_bad(values: list[str], allowed: set[str]) -> int | None:
    bad = set(values) - allowed
    return next(i for i, v in enumerate(values) if v in bad) if bad else None


def _optional_text(arrays: dict[str, np.ndarray], name: str, start: int, stop: int) -> list[str]:
    """An optional array's cells as text; empty strings where the file has no such array."""
    if name not in arrays:
        return [""] * (stop - start)
    return [str(v) for v in arrays[name][start:stop].tolist()]


def _npz_rows(
    arrays: dict[str, np.ndarray],
    formats: np.ndarray | None,
    features: np.ndarray,
    start: int,
    stop: int,
    pepper: bytes,
) -> list[RecordRow]:
    """One chunk, validated column by column (the per-row work is the hashing alone)."""
    keys = [str(k) for k in arrays["keys"][start:stop].tolist()]
    types = [str(t) for t in arrays["identity_types"][start:stop].tolist()]
    values = [str(v) for v in arrays["identity_values"][start:stop].tolist()]
    splits = [str(v) for v in arrays["splits"][start:stop].tolist()]
    fmts = (
        ["raw"] * len(keys) if formats is None else [str(f) for f in formats[start:stop].tolist()]
    )
    checks = (
        (types, {t.value for t in IdentityType}, "unknown identity_type"),
        (fmts, {f.value for f in IdentityFormat}, "identity_format must be raw or sha256"),
        (splits, set(SPLITS), f"split must be one of {', '.join(SPLITS)}"),
    )
    for column, allowed, message in checks:
        bad = _first_bad(column, allowed)
        if bad is not None:
            raise ImportFileError(f"row {start + bad}: {message}")
    labels = np.asarray(arrays["labels"][start:stop])
    if not (np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating)):
        raise ImportFileError(f"rows {start}-{stop - 1}: {LABEL_RULE}")
    with np.errstate(invalid="ignore"):
        bad_labels = (
            ~np.isfinite(labels) | (np.mod(labels, 1) != 0)
            if np.issubdtype(labels.dtype, np.floating)
            else np.zeros(labels.shape, dtype=bool)
        )
        bad_labels |= (labels < 0) | (labels > INT32_MAX)
    if bad_labels.any():
        raise ImportFileError(f"row {start + int(np.argmax(bad_labels))}: {LABEL_RULE}")
    _check_keys(keys, start)
    block = np.ascontiguousarray(features[start:stop], dtype="<f4")
    _check_features(block, start)
    bases = _optional_text(arrays, "lawful_bases", start, stop)
    notes = _optional_text(arrays, "lawful_basis_notes", start, stop)
    try:
        hashes = identity_hashes(
            pepper=pepper,
            identities=[
                (_IDENTITY_TYPES[t], v, _IDENTITY_FORMATS[f])
                for t, v, f in zip(types, values, fmts, strict=True)
            ],
        )
    except IdentityErrorAt as exc:
        raise ImportFileError(f"row {start + exc.position}: {exc}") from None
    label_ints = labels.astype(np.int64).tolist()
    rows = []
    for i, (type_, hashed) in enumerate(zip(types, hashes, strict=True)):
        rows.append(
            RecordRow(
                key=keys[i],
                identities=((type_, hashed),),
                features=block[i].tobytes(),
                label=label_ints[i],
                split=splits[i],
                lawful_basis=_claim(start + i, bases[i], notes[i]),
            )
        )
    return rows


def count_rows(path: Path) -> int:
    if path.suffix.lower() == ".jsonl":
        with path.open(encoding="utf-8") as handle:
            return sum(1 for line in handle if line.strip())
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return len(data["keys"])
    with path.open() as handle:
        return max(sum(1 for _ in handle) - 1, 0)
