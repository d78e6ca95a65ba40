"""Erasure debt: requests whose models were only mitigated (approximate unlearning applied and
checked) and still wait for the exact retrain that closes them, as the models page shows it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.erasure.debt import waiting_requests
from app.registry.models import MlModel


@dataclass(frozen=True)
class DebtItem:
    """One mitigated request on one model, not yet exact."""

    request_id: uuid.UUID
    reference: str | None
    model_id: uuid.UUID
    model_name: str
    mitigated_at: datetime
    due_at: datetime
    exact_scheduled_for: datetime | None


def erasure_debt(session: Session) -> list[DebtItem]:
    """Every request mitigated but not yet exact, soonest due first."""
    names = {m.id: m.name for m in session.scalars(select(MlModel))}
    return [
        DebtItem(
            request_id=row.request.id,
            reference=row.request.reference,
            model_id=row.model_id,
            model_name=names.get(row.model_id, str(row.model_id)),
            mitigated_at=row.request.mitigated_at or row.request.updated_at,
            due_at=row.request.due_at,
            exact_scheduled_for=row.exact_scheduled_at,
        )
        for row in waiting_requests(session)
    ]
