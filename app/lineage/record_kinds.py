"""Which kind a record is, tabular or text, and the rule that a dataset holds one kind.

A tabular record has `features` and a `label`; a text record has `text`, or a `completion` with
an optional `prompt`. Each problem points at the field that breaks the rule.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.core.errors import ProblemError
from app.lineage.models import TABULAR, TEXT
from app.lineage.schemas import RecordIn

_TEXT_FIELDS = ("text", "prompt", "completion")


def _invalid(pointer: str, detail: str) -> ProblemError:
    return ProblemError(
        422,
        "A record has features and a label, or text, or a prompt and a completion",
        slug="invalid-record",
        errors=[{"pointer": pointer, "detail": detail}],
    )


def record_kind(*, index: int, record: RecordIn) -> str:
    at = f"#/records/{index}"
    text_fields = [name for name in _TEXT_FIELDS if getattr(record, name) is not None]
    tabular = record.features is not None or record.label is not None
    if tabular and text_fields:
        raise _invalid(f"{at}/{text_fields[0]}", "a record is tabular or text, not both")
    if tabular:
        if record.features is None:
            raise _invalid(f"{at}/features", "required with label")
        if record.label is None:
            raise _invalid(f"{at}/label", "required with features")
        return TABULAR
    if not text_fields:
        raise _invalid(at, "needs features and label, text, or prompt and completion")
    if record.text is not None and len(text_fields) > 1:
        raise _invalid(f"{at}/{text_fields[1]}", "use text, or prompt and completion")
    if record.prompt is not None and record.completion is None:
        raise _invalid(f"{at}/completion", "required with prompt")
    return TEXT


def call_kind(records: Sequence[RecordIn]) -> str:
    """The kind every record of one call shares."""
    kinds = [record_kind(index=i, record=r) for i, r in enumerate(records)]
    mixed = [i for i, kind in enumerate(kinds) if kind != kinds[0]]
    if mixed:
        raise ProblemError(
            422,
            f"Every record in one call must be of one kind; the first is {kinds[0]}",
            slug="record-kind-mismatch",
            errors=[{"pointer": f"#/records/{i}", "detail": "other kind"} for i in mixed[:100]],
        )
    return kinds[0]


def check_dataset_kind(*, dataset_kind: str | None, kind: str, pointer_prefix: str) -> None:
    if dataset_kind is not None and dataset_kind != kind:
        raise ProblemError(
            422,
            f"This dataset holds {dataset_kind} records, not {kind} ones",
            slug="record-kind-mismatch",
            errors=[{"pointer": f"{pointer_prefix}/0", "detail": f"not a {dataset_kind} record"}],
        )
