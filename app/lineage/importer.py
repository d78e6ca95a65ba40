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
import math
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from app.core.validation import FLOAT32_MAX, INT32_MAX, text_problem
from app.lineage.bulk import RecordRow
from app.lineage.identity import (
    IdentityError,
    IdentityErrorAt,
    IdentityFormat,
    IdentityType,
    identity_hash,
    identity_hashes_of,
)
from app.lineage.models import SPLITS
from app.suppression.enums import LawfulBasis
from app.suppression.service import BasisClaim

REQUIRED_COLUMNS = ("key", "identity_type", "identity_value", "label", "split")
OPTIONAL_COLUMNS = ("identity_format", "lawful_basis", "lawful_basis_note")
NOTE_MAX = 2000


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
    # The file row of each row where they are not consecutive (JSON lines skip blank lines).
    row_numbers: list[int] | None = None

    def row_number(self, index: int) -> int:
        return self.row_numbers[index] if self.row_numbers else self.first_row + index


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


_NPZ_NEEDED = ("keys", "identity_types", "identity_values", "labels", "splits", "features")
_NPZ_OPTIONAL = ("identity_formats", "lawful_bases", "lawful_basis_notes")
_SHAPES = "arrays must all have the same length and features must be n x d"


class _NpzArray:
    """One array of an NPZ file, read a block of rows at a time: loading every array at once
    takes gigabytes at ten million records, and a compressed member cannot be memory-mapped.
    An array stored in Fortran order or in a newer format version is read whole."""

    def __init__(self, archive: zipfile.ZipFile, name: str) -> None:
        self.name = name
        self._stream = archive.open(f"{name}.npy")
        header = _header(self._stream)
        self._whole: np.ndarray | None = None
        if header is None:
            self._whole = _load_member(archive, name)
            header = (self._whole.shape, self._whole.dtype)
        shape, dtype = header
        if dtype.hasobject:
            raise ImportFileError(f"array {name} holds Python objects, which are not read")
        self.shape: tuple[int, ...] = tuple(shape)
        self.dtype: np.dtype = dtype
        self._row_items = math.prod(self.shape[1:])
        self._next = 0

    def rows(self, count: int) -> np.ndarray:
        """The next `count` rows."""
        start, self._next = self._next, self._next + count
        if self._whole is not None:
            return self._whole[start : self._next]
        size = count * self._row_items * self.dtype.itemsize
        data = self._stream.read(size)
        if len(data) != size:
            raise ImportFileError(f"array {self.name} is shorter than its header says")
        return np.frombuffer(data, dtype=self.dtype).reshape((count, *self.shape[1:]))

    def rest(self) -> np.ndarray:
        """Every row not read yet."""
        return self.rows(self.shape[0] - self._next)


_HEADERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def _header(stream: IO[bytes]) -> tuple[tuple[int, ...], np.dtype] | None:
    """(shape, dtype) of a .npy stream whose rows can be read in order, positioned at its data;
    None for another format version or a Fortran-ordered table."""
    read = _HEADERS.get(np.lib.format.read_magic(stream))
    if read is None:
        return None
    shape, fortran, dtype = read(stream)
    return None if fortran and len(shape) > 1 else (shape, dtype)


def _load_member(archive: zipfile.ZipFile, name: str) -> np.ndarray:
    with archive.open(f"{name}.npy") as member:
        return np.asarray(np.lib.format.read_array(member, allow_pickle=False))


def _npz_arrays(archive: zipfile.ZipFile) -> dict[str, _NpzArray]:
    """The file's arrays, opened; checked for presence and shapes (nothing read yet)."""
    present = {n.removesuffix(".npy") for n in archive.namelist() if n.endswith(".npy")}
    missing = [n for n in _NPZ_NEEDED if n not in present]
    if missing:
        raise ImportFileError(f"missing array(s): {', '.join(missing)}")
    arrays = {n: _NpzArray(archive, n) for n in (*_NPZ_NEEDED, *_NPZ_OPTIONAL) if n in present}
    if any(not a.shape for a in arrays.values()):
        raise ImportFileError(_SHAPES)
    n = arrays["keys"].shape[0]
    if len(arrays["features"].shape) != 2 or any(a.shape[0] != n for a in arrays.values()):
        raise ImportFileError(_SHAPES)
    return arrays


def _float_features(arrays: dict[str, _NpzArray]) -> Callable[[int], np.ndarray]:
    """A reader of the next rows of features as float32. Numbers are converted block by block;
    any other dtype (text, which may parse as numbers) is converted whole first, so that a file
    whose features do not convert is refused before anything is imported."""
    features = arrays["features"]
    if features.dtype.kind in "biuf":
        return lambda count: _as_float32(features.rows(count))
    converted = _as_float32(features.rest())
    start = 0

    def rows(count: int) -> np.ndarray:
        nonlocal start
        start += count
        return converted[start - count : start]

    return rows


def _as_float32(values: np.ndarray) -> np.ndarray:
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            return np.ascontiguousarray(values, dtype="<f4")
    except (TypeError, ValueError):
        raise ImportFileError("features must be a numeric n x d array") from None


def read_npz(path: Path, *, pepper: bytes, chunk_size: int) -> Iterator[Chunk]:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ImportFileError("not an NPZ file (a zip archive of .npy arrays)") from None
    with archive:
        arrays = _npz_arrays(archive)
        features = _float_features(arrays)
        n, width = arrays["features"].shape
        for start in range(0, n, chunk_size):
            count = min(chunk_size, n - start)
            columns = {name: a.rows(count) for name, a in arrays.items() if name != "features"}
            yield Chunk(
                rows=_npz_rows(columns, features(count), start, pepper),
                feature_count=width,
                first_row=start,
            )


def _first_bad(values: list[str], allowed: set[str]) -> int | None:
    bad = set(values) - allowed
    return next(i for i, v in enumerate(values) if v in bad) if bad else None


def _texts(cells: np.ndarray) -> list[str]:
    """An array's cells as Python strings."""
    values = cells.tolist()
    return values if cells.dtype.kind == "U" else [str(v) for v in values]


def _claims(columns: dict[str, np.ndarray], start: int, count: int) -> list[BasisClaim | None]:
    """Each row's lawful basis; none at all when the file has neither optional array."""
    if "lawful_bases" not in columns and "lawful_basis_notes" not in columns:
        return [None] * count
    empty = [""] * count
    bases = _texts(columns["lawful_bases"]) if "lawful_bases" in columns else empty
    notes = _texts(columns["lawful_basis_notes"]) if "lawful_basis_notes" in columns else empty
    return [_claim(start + i, b, n) for i, (b, n) in enumerate(zip(bases, notes, strict=True))]


def _check_labels(labels: np.ndarray, start: int) -> list[int]:
    """The labels as ints, each a whole number from 0 to INT32_MAX."""
    if not (np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating)):
        raise ImportFileError(f"rows {start}-{start + len(labels) - 1}: {LABEL_RULE}")
    with np.errstate(invalid="ignore"):
        bad_labels = (
            ~np.isfinite(labels) | (np.mod(labels, 1) != 0)
            if np.issubdtype(labels.dtype, np.floating)
            else np.zeros(labels.shape, dtype=bool)
        )
        bad_labels |= (labels < 0) | (labels > INT32_MAX)
    if bad_labels.any():
        raise ImportFileError(f"row {start + int(np.argmax(bad_labels))}: {LABEL_RULE}")
    return list(labels.astype(np.int64).tolist())


def _npz_rows(
    columns: dict[str, np.ndarray], block: np.ndarray, start: int, pepper: bytes
) -> list[RecordRow]:
    """One chunk, validated column by column (the per-row work is the hashing alone)."""
    keys = _texts(columns["keys"])
    types = _texts(columns["identity_types"])
    values = _texts(columns["identity_values"])
    splits = _texts(columns["splits"])
    fmts = _texts(columns["identity_formats"]) if "identity_formats" in columns else None
    checks = (
        (types, {t.value for t in IdentityType}, "unknown identity_type"),
        (fmts or [], {f.value for f in IdentityFormat}, "identity_format must be raw or sha256"),
        (splits, set(SPLITS), f"split must be one of {', '.join(SPLITS)}"),
    )
    for column, allowed, message in checks:
        bad = _first_bad(column, allowed)
        if bad is not None:
            raise ImportFileError(f"row {start + bad}: {message}")
    labels = _check_labels(columns["labels"], start)
    _check_keys(keys, start)
    _check_features(block, start)
    try:
        hashes = identity_hashes_of(
            pepper=pepper, types=types, values=values, formats=fmts or ["raw"] * len(keys)
        )
    except IdentityErrorAt as exc:
        raise ImportFileError(f"row {start + exc.position}: {exc}") from None
    claims = _claims(columns, start, len(keys))
    width = block.shape[1] * 4
    raw = block.tobytes()
    return [
        RecordRow(
            key=key,
            identities=((type_, hashed),),
            features=raw[at : at + width],
            label=label,
            split=split,
            lawful_basis=claim,
        )
        for key, type_, hashed, at, label, split, claim in zip(
            keys, types, hashes, range(0, len(raw), width), labels, splits, claims, strict=True
        )
    ]


def count_rows(path: Path) -> int:
    if path.suffix.lower() == ".jsonl":
        with path.open(encoding="utf-8") as handle:
            return sum(1 for line in handle if line.strip())
    if path.suffix == ".npz":
        with zipfile.ZipFile(path) as archive:
            return _npz_arrays(archive)["keys"].shape[0]
    with path.open() as handle:
        return max(sum(1 for _ in handle) - 1, 0)
