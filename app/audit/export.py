"""Exporting the audit log for a period, as JSON lines or CSV, streamed in batches.

Each exported event keeps its `seq`, `prev_hash` and `hash`, so an auditor can recompute the
links offline (`app.audit.chain`: `hash = sha256(prev_hash || canonical JSON)`); a period's
first event links to the event before the period.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.models import AuditEvent

CSV_COLUMNS = (
    "seq",
    "occurred_at",
    "actor",
    "action",
    "entity_type",
    "entity_id",
    "data",
    "prev_hash",
    "hash",
)


def events_between(
    session: Session, *, start: datetime, end: datetime, batch: int = 2000
) -> Iterator[AuditEvent]:
    """Events with `start <= occurred_at < end`, in chain order, `batch` rows per query."""
    after = 0
    while True:
        rows = list(
            session.scalars(
                select(AuditEvent)
                .where(
                    AuditEvent.seq > after,
                    AuditEvent.occurred_at >= start,
                    AuditEvent.occurred_at < end,
                )
                .order_by(AuditEvent.seq)
                .limit(batch)
            )
        )
        if not rows:
            return
        yield from rows
        after = rows[-1].seq
        session.expunge_all()


def _record(event: AuditEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "occurred_at": event.occurred_at.isoformat(timespec="microseconds"),
        "actor": event.actor,
        "action": event.action,
        "entity_type": event.entity_type,
        "entity_id": event.entity_id,
        "data": event.data,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def as_json_lines(events: Iterator[AuditEvent]) -> Iterator[str]:
    for event in events:
        yield json.dumps(_record(event), sort_keys=True, ensure_ascii=False) + "\n"


def as_csv(events: Iterator[AuditEvent]) -> Iterator[str]:
    """One row per event; `data` is its canonical JSON."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for event in events:
        record = _record(event)
        record["data"] = json.dumps(event.data, sort_keys=True, separators=(",", ":"))
        writer.writerow([record[c] for c in CSV_COLUMNS])
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
