"""Fast insertion of many training records: identities resolved in bulk, COPY on Postgres."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg.errors
from psycopg import Copy
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from app.core.db import one_of, utcnow
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


def existing_subjects(
    session: Session, pairs: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], uuid.UUID]:
    """Map (type, hash) pairs to the subjects that already own them."""
    found: dict[tuple[str, str], uuid.UUID] = {}
    unique = list(dict.fromkeys(pairs))
    for start in range(0, len(unique), _LOOKUP_CHUNK):
        chunk = unique[start : start + _LOOKUP_CHUNK]
        hashes = [h for _, h in chunk]
        rows = session.execute(
            select(SubjectIdentity.type, SubjectIdentity.hash, SubjectIdentity.subject_id).where(
                one_of(session, SubjectIdentity.hash, hashes)
            )
        )
        for type_, hash_, subject_id in rows:
            found[(type_, hash_)] = subject_id
    return found


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
    new_subjects: list[uuid.UUID] = []
    new_identities: list[tuple[uuid.UUID, str, str]] = []
    record_subjects: list[uuid.UUID] = []
    for row in rows:
        subject = next((owner[p] for p in row.identities if p in owner), None)
        if subject is None:
            subject = uuid.uuid4()
            new_subjects.append(subject)
        for pair in row.identities:
            if pair not in owner:
                owner[pair] = subject
                new_identities.append((subject, pair[0], pair[1]))
        record_subjects.append(subject)

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
    raw = session.connection().connection.driver_connection
    if raw is None:
        raise RuntimeError("the session's database connection is closed")
    created_at = now.isoformat()
    with raw.cursor() as cursor:
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
