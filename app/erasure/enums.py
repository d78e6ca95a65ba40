"""The statuses of an erasure request. A leaf module: anything may import it.

Which status may follow which lives in `app.erasure.lifecycle.TRANSITIONS`.
"""

from __future__ import annotations

from enum import StrEnum


class RequestStatus(StrEnum):
    RECEIVED = "received"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    DENIED = "denied"
    PLANNING = "planning"
    PLANNED = "planned"
    RUNNING = "running"
    VERIFYING = "verifying"
    # Approximate unlearning has stopped the active model exposing the person; the exact
    # retrain that closes the request is scheduled.
    MITIGATED = "mitigated"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


# A request in one of these may be (re)planned: the reconciler re-plans those left here.
PLANNABLE: frozenset[RequestStatus] = frozenset(
    {RequestStatus.RECEIVED, RequestStatus.APPROVED, RequestStatus.PLANNING}
)
