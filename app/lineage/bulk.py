"""Fast insertion of many training records: identities resolved in bulk, COPY on Postgres."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
import psycopg.errors
from psycopg import Copy
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from app.core.db import Base, one_of, utcnow
from app.lineage.models import DataSubject, SubjectIdentity, TrainingRecord
from app.suppression.service import BasisClaim

_LOOKUP_CHUNK = 5000


@dataclass(frozen=True, slots=True)
class RecordRow:
    key: str
    identities: tuple[tuple[str, str], ...]  # (type, keyed hash)
    features: bytes
    label: int
    split: str
    # The lawful basis stated for processing the record of a person erased on request.
    lawful_basis: BasisClaim | None = None
    # A text record's prompt (optional) and completion (its text); features empty, label 0.
    prompt: str | None = None
    completion: str | None = None


@dataclass(frozen=True)
class InsertResult:
    added: int
    new_subjects: int


class DuplicateKeys(ValueError):
    def __init__(self, positions: list[int]) -> None:
        super().__init__(f"{len(positions)} record key(s) already exist in this dataset")
        self.positions = positions


def rows_by_hash(
    session: Session, model: type[Base], columns: Sequence[str], hashes: Sequence[str]
) -> list[tuple[Any, ...]]:
    """`columns` of `model`'s rows whose `hash` is one of `hashes`.

    On Postgres the hashes travel as one comma-separated text value that the server splits (the
    driver would convert a list element by element), and each is looked up through the hash
    index, in order: for `hash = ANY(...)` of 20,000 hashes the planner scans the whole table,
    which grows with every chunk imported. Hashes that hold a comma (never a keyed hash) go as
    a list."""
    unique = sorted(set(hashes))
    joined = ",".join(unique)
    if session.get_bind().dialect.name == "postgresql" and joined.count(",") == len(unique) - 1:
        listed = ", ".join(f"t.{c}" for c in columns)
        # OFFSET 0 keeps the lateral subquery a lookup per hash (not a join to plan).
        statement = (
            "SELECT found.* FROM unnest(string_to_array(%s, ',')) AS wanted(hash)"
            f" CROSS JOIN LATERAL (SELECT {listed} FROM {model.__tablename__} AS t"
            " WHERE t.hash = wanted.hash OFFSET 0) AS found"
        )
        with _driver_connection(session).cursor() as cursor:
            return cursor.execute(statement, (joined,)).fetchall()
    found: list[tuple[Any, ...]] = []
    hash_column, *selected = (getattr(model, c) for c in ("hash", *columns))
    for start in range(0, len(unique), _LOOKUP_CHUNK):
        chunk = unique[start : start + _LOOKUP_CHUNK]
        rows = session.execute(select(*selected).where(one_of(session, hash_column, chunk)))
        found += (tuple(row) for row in rows)
    return found


def _driver_connection(session: Session) -> psycopg.Connection[Any]:
    """The psycopg connection under the session's, in its transaction."""
    raw = session.connection().connection.driver_connection
    if not isinstance(raw, psycopg.Connection):
        raise RuntimeError("the session's database connection is closed or not psycopg's")
    return raw


def existing_subjects(
    session: Session, pairs: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], uuid.UUID]:
    """Map (type, hash) pairs to the subjects that already own them."""
    rows = rows_by_hash(
        session, SubjectIdentity, ("type", "hash", "subject_id"), [h for _, h in pairs]
    )
    return {(type_, hash_): subject_id for type_, hash_, subject_id in rows}


def _existing_keys(session: Session, dataset_id: uuid.UUID, keys: list[str]) -> set[str]:
    present: set[str] = set()
    for start in range(0, len(keys), _LOOKUP_CHUNK):
        chunk = keys[start : start + _LOOKUP_CHUNK]
        present.update(
            session.scalars(
                select(TrainingRecord.key).where(
                    TrainingRecord.dataset_id == dataset_id,
                    one_of(session, TrainingRecord.key, chunk),
                )
            )
        )
    return present


def insert_records(
    session: Session, *, dataset_id: uuid.UUID, rows: Sequence[RecordRow]
) -> InsertResult:
    """Insert rows in the caller's transaction. Raises DuplicateKeys and inserts nothing."""
    keys = [r.key for r in rows]
    seen: set[str] = set()
    dup_positions = []
    for i, k in enumerate(keys):
        if k in seen:
            dup_positions.append(i)
        seen.add(k)
    postgres = session.get_bind().dialect.name == "postgresql"
    if not postgres:  # on Postgres the unique index answers this during COPY, at no extra cost
        present = _existing_keys(session, dataset_id, keys)
        dup_positions += [i for i, k in enumerate(keys) if k in present]
    if dup_positions:
        raise DuplicateKeys(sorted(set(dup_positions)))

    owner = existing_subjects(session, [p for r in rows for p in r.identities])
    record_subjects, new_subjects, new_identities = _assign_subjects(rows, owner)

    now = utcnow()
    if postgres:
        try:
            with session.begin_nested():
                _copy_rows(
                    session, dataset_id, rows, record_subjects, new_subjects, new_identities, now
                )
        except psycopg.errors.UniqueViolation:
            present = _existing_keys(session, dataset_id, keys)
            raise DuplicateKeys([i for i, k in enumerate(keys) if k in present]) from None
    else:
        if new_subjects:
            session.execute(
                insert(DataSubject), [{"id": s, "created_at": now} for s in new_subjects]
            )
        if new_identities:
            session.execute(
                insert(SubjectIdentity),
                [{"subject_id": s, "type": t, "hash": h} for s, t, h in new_identities],
            )
        session.execute(
            insert(TrainingRecord),
            [
                {
                    "dataset_id": dataset_id,
                    "key": r.key,
                    "subject_id": s,
                    "split": r.split,
                    "label": r.label,
                    "features": r.features,
                    "prompt": r.prompt,
                    "completion": r.completion,
                    "created_at": now,
                }
                for r, s in zip(rows, record_subjects, strict=True)
            ],
        )
    return InsertResult(added=len(rows), new_subjects=len(new_subjects))


def _assign_subjects(
    rows: Sequence[RecordRow], owner: dict[tuple[str, str], uuid.UUID]
) -> tuple[list[uuid.UUID], list[uuid.UUID], list[tuple[uuid.UUID, str, str]]]:
    """Each row's subject: the owner of its first known identity, else a new subject; `owner`
    learns every new identity. Returns (record subjects, new subjects, new identities)."""
    new_subjects: list[uuid.UUID] = []
    new_identities: list[tuple[uuid.UUID, str, str]] = []
    record_subjects: list[uuid.UUID] = []
    for row in rows:
        subject = None
        for pair in row.identities:
            subject = owner.get(pair)
            if subject is not None:
                break
        if subject is None:
            subject = uuid.uuid4()
            new_subjects.append(subject)
        for pair in row.identities:
            if pair not in owner:
                owner[pair] = subject
                new_identities.append((subject, pair[0], pair[1]))
        record_subjects.append(subject)
    return record_subjects, new_subjects, new_identities


def _copy_text(value: str | None) -> str:
    """A value as a field of COPY's text format: backslash, tab, newline and carriage return
    escaped, None as `\\N`."""
    if value is None:
        return "\\N"
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return (
            value.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return value


def _copy_lines(
    dataset_id: uuid.UUID,
    rows: Sequence[RecordRow],
    record_subjects: list[uuid.UUID],
    created_at: str,
) -> Iterator[str]:
    """Training records as lines of COPY's text format, features as bytea hex."""
    subject_text: dict[uuid.UUID, str] = {}
    head = f"{dataset_id}\t"
    tail = f"\t{created_at}\n"
    for r, s in zip(rows, record_subjects, strict=True):
        subject = subject_text.get(s)
        if subject is None:
            subject = subject_text[s] = str(s)
        texts = (
            "\\N\t\\N"  # a tabular record: no prompt, no completion
            if r.prompt is None and r.completion is None
            else f"{_copy_text(r.prompt)}\t{_copy_text(r.completion)}"
        )
        yield (
            f"{head}{_copy_text(r.key)}\t{subject}\t{_copy_text(r.split)}\t{r.label}"
            f"\t\\\\x{r.features.hex()}\t{texts}{tail}"
        )


def _copy_rows(
    session: Session,
    dataset_id: uuid.UUID,
    rows: Sequence[RecordRow],
    record_subjects: list[uuid.UUID],
    new_subjects: list[uuid.UUID],
    new_identities: list[tuple[uuid.UUID, str, str]],
    now: datetime,
) -> None:
    """COPY in text format, written in blocks: formatting the lines here is several times
    faster than handing psycopg one row at a time."""
    created_at = now.isoformat()
    with _driver_connection(session).cursor() as cursor:
        if new_subjects:
            with cursor.copy("COPY data_subjects (id, created_at) FROM STDIN") as copy:
                _write_blocks(copy, (f"{s}\t{created_at}\n" for s in new_subjects))
        if new_identities:
            with cursor.copy("COPY subject_identities (subject_id, type, hash) FROM STDIN") as copy:
                _write_blocks(
                    copy,
                    (f"{s}\t{_copy_text(t)}\t{_copy_text(h)}\n" for s, t, h in new_identities),
                )
        with cursor.copy(
            "COPY training_records"
            " (dataset_id, key, subject_id, split, label, features, prompt, completion,"
            " created_at) FROM STDIN"
        ) as copy:
            _write_blocks(copy, _copy_lines(dataset_id, rows, record_subjects, created_at))


def _write_blocks(copy: Copy, lines: Iterator[str], *, per_block: int = 2000) -> None:
    block: list[str] = []
    for line in lines:
        block.append(line)
        if len(block) == per_block:
            copy.write("".join(block))
            block = []
    if block:
        copy.write("".join(block))
