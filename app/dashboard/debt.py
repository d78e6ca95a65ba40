"""Erasure debt: requests whose models were only mitigated (approximate unlearning applied and
checked) and still wait for the exact retrain that closes them.

Requests cannot be mitigated yet, so this returns nothing; the models page renders whatever it
returns. Wire it to the erasure domain's erasure-debt function once that exists.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session


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
    del session  # read once requests can be mitigated
    return []
