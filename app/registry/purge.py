"""The purge outbox: what an erasure must delete, recorded in the transaction that made it
necessary and confirmed item by item by the sweeper (`workers.pipeline.sweeper`).

A request completes, and its certificate is signed, only once every item of its exact jobs and
its own database scrub are confirmed; the certificate counts them.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from typing import Any

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


def confirm(
    item: PurgeItem, *, deleted_from: str | None = None, versions_deleted: int | None = None
) -> None:
    """The item is gone; `deleted_from` names the artifact store that held its files and
    `versions_deleted` counts the stored object versions (delete markers included) removed."""
    item.attempts += 1
    item.confirmed_at = utcnow()
    item.last_error = None
    item.deleted_from = deleted_from
    item.versions_deleted = versions_deleted


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


def counts_for_job(session: Session, *, job_id: uuid.UUID) -> dict[str, Any]:
    """How many of each kind the job's activation deleted (confirmed): checkpoints, version
    files, and reference models (each one item, for its manifest and weights); and, per
    artifact store, how many stored object versions (delete markers included) that removed."""
    rows = session.execute(
        select(PurgeItem.kind, PurgeItem.deleted_from, PurgeItem.versions_deleted).where(
            PurgeItem.job_id == job_id, PurgeItem.confirmed_at.is_not(None)
        )
    ).all()
    kinds = Counter(kind for kind, _, _ in rows)
    versions: Counter[str] = Counter()
    for _, store, count in rows:
        if store is not None:
            versions[store] += count or 0
    return {
        "checkpoints": kinds[PurgeKind.CHECKPOINT],
        "artifacts": kinds[PurgeKind.ARTIFACT],
        "references": kinds[PurgeKind.REFERENCE],
        "object_versions": dict(sorted(versions.items())),
    }
