"""The purge outbox: what an erasure must delete, recorded in the transaction that made it
necessary and confirmed item by item by the sweeper (`workers.pipeline.sweeper`).

A request completes, and its certificate is signed, only once every item of its exact jobs and
its own database scrub are confirmed; the certificate counts them.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.db import utcnow
from app.registry.enums import PurgeKind
from app.registry.models import PurgeItem

SWEEP_BATCH = 500


def record(
    session: Session,
    *,
    kind: PurgeKind,
    key: str,
    model_id: uuid.UUID | None = None,
    job_id: uuid.UUID | None = None,
    request_id: uuid.UUID | None = None,
) -> PurgeItem:
    item = PurgeItem(
        kind=kind, key=key, model_id=model_id, job_id=job_id, request_id=request_id, attempts=0
    )
    session.add(item)
    return item


def pending(session: Session, *, limit: int = SWEEP_BATCH) -> list[PurgeItem]:
    """Unconfirmed items, oldest first, locked so two sweepers never take the same one."""
    return list(
        session.scalars(
            select(PurgeItem)
            .where(PurgeItem.confirmed_at.is_(None))
            .order_by(PurgeItem.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )


def confirm(item: PurgeItem) -> None:
    item.attempts += 1
    item.confirmed_at = utcnow()
    item.last_error = None


def failed(item: PurgeItem, *, error: str) -> None:
    """An attempt that did not confirm; the next sweep tries again. `error` names the failure,
    never a value."""
    item.attempts += 1
    item.last_error = error[:500]


def jobs_outstanding(session: Session, *, job_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """The jobs among these that still have an unconfirmed item."""
    ids = list(job_ids)
    if not ids:
        return set()
    return {
        job_id
        for job_id in session.scalars(
            select(PurgeItem.job_id)
            .where(PurgeItem.job_id.in_(ids), PurgeItem.confirmed_at.is_(None))
            .distinct()
        )
        if job_id is not None
    }


def request_outstanding(session: Session, *, request_id: uuid.UUID) -> bool:
    count = session.scalar(
        select(func.count())
        .select_from(PurgeItem)
        .where(PurgeItem.request_id == request_id, PurgeItem.confirmed_at.is_(None))
    )
    return bool(count)


def counts_for_job(session: Session, *, job_id: uuid.UUID) -> dict[str, int]:
    """How many of each kind the job's activation deleted (confirmed): checkpoints, version
    files, and reference models (each one item, for its manifest and weights)."""
    kinds = Counter(
        session.scalars(
            select(PurgeItem.kind).where(
                PurgeItem.job_id == job_id, PurgeItem.confirmed_at.is_not(None)
            )
        )
    )
    return {
        "checkpoints": kinds[PurgeKind.CHECKPOINT],
        "artifacts": kinds[PurgeKind.ARTIFACT],
        "references": kinds[PurgeKind.REFERENCE],
    }
