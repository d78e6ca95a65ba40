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
from app.lineage.schemas import RecordIn
from app.lineage.service import rows_from_api


def _field(location: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in location) or "record"


def _parse(line: int, text: str) -> RecordIn:
    try:
        return RecordIn.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        raise ImportFileError(f"row {line}: {_field(first['loc'])}: {first['msg']}") from None


def _chunk(records: list[RecordIn], lines: list[int], pepper: bytes) -> Chunk:
    """`lines[i]` is the file line of `records[i]` (blank lines are skipped, so they differ)."""
    try:
        rows, feature_count = rows_from_api(pepper=pepper, records=records)
    except ProblemError as exc:
        pointer = (exc.errors or [{}])[0].get("pointer", "#/records/0")
        _, _, index, *field = pointer.split("/")
        where = f"{'/'.join(field)}: " if field else ""
        raise ImportFileError(f"row {lines[int(index)]}: {where}{exc.detail}") from None
    return Chunk(rows=rows, feature_count=feature_count, first_row=lines[0], row_numbers=lines)


def read_jsonl(path: Path, *, pepper: bytes, chunk_size: int) -> Iterator[Chunk]:
    records: list[RecordIn] = []
    lines: list[int] = []
    with path.open(encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            records.append(_parse(line, text))
            lines.append(line)
            if len(records) == chunk_size:
                yield _chunk(records, lines, pepper)
                records, lines = [], []
    if records:
        yield _chunk(records, lines, pepper)
