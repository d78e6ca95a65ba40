"""Reading training records from a JSON lines file for `lethe records import`.

Each non-empty line is one record in the API's form (`POST /v1/datasets/{id}/records`): `key`,
`identities`, `split`, and `features` and `label`, or `text`, or `prompt` and `completion`, and
optionally `lawful_basis`. It is the import format for text records. Errors name the line and
the field, never a value.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from app.core.errors import ProblemError
from app.lineage.importer import Chunk, ImportFileError
from app.lineage.record_kinds import record_kind
from app.lineage.schemas import RecordIn
from app.lineage.service import rows_from_api


def _field(location: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in location) or "record"


def _parse(line: int, text: str) -> RecordIn:
    try:
        record = RecordIn.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        raise ImportFileError(f"row {line}: {_field(first['loc'])}: {first['msg']}") from None
    try:
        record_kind(index=0, record=record)
    except ProblemError as exc:
        pointer = (exc.errors or [{}])[0].get("pointer", "")
        field = pointer.removeprefix("#/records/0").strip("/") or "record"
        raise ImportFileError(f"row {line}: {field}: {exc.detail}") from None
    return record


def _chunk(records: list[RecordIn], pepper: bytes, first: int) -> Chunk:
    try:
        rows, feature_count = rows_from_api(pepper=pepper, records=records)
    except ProblemError as exc:
        pointer = (exc.errors or [{}])[0].get("pointer", "#/records/0")
        index = int(pointer.split("/")[2])
        raise ImportFileError(f"row {first + index}: {exc.detail}") from None
    return Chunk(rows=rows, feature_count=feature_count, first_row=first)


def read_jsonl(path: Path, *, pepper: bytes, chunk_size: int) -> Iterator[Chunk]:
    buffer: list[RecordIn] = []
    first = 1
    with path.open(encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            if not buffer:
                first = line
            buffer.append(_parse(line, text))
            if len(buffer) == chunk_size:
                yield _chunk(buffer, pepper, first)
                buffer = []
    if buffer:
        yield _chunk(buffer, pepper, first)
