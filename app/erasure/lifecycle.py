"""Every status transition of an erasure request, and nothing else changes a status.

Each transition, in the caller's transaction: checks it is legal from the current status (a 409
problem naming the current status otherwise), writes the new status, an audit event and the
webhook outbox rows for its subscribers.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.audit.service import append_event
from app.core.db import utcnow
from app.core.errors import ProblemError
from app.erasure import events
from app.erasure.enums import RequestStatus
from app.erasure.models import ErasureRequest

S = RequestStatus
TRANSITIONS: dict[RequestStatus, frozenset[RequestStatus]] = {
    S.RECEIVED: frozenset({S.PENDING_APPROVAL, S.PLANNING, S.CANCELLED}),
    S.PENDING_APPROVAL: frozenset({S.APPROVED, S.DENIED, S.CANCELLED}),
    S.APPROVED: frozenset({S.PLANNING, S.CANCELLED}),
    S.PLANNING: frozenset({S.PLANNED, S.COMPLETED, S.FAILED, S.CANCELLED}),
    # planned -> completed: records were found, but no model was trained on them.
    S.PLANNED: frozenset({S.RUNNING, S.COMPLETED, S.FAILED, S.CANCELLED}),
    S.RUNNING: frozenset({S.VERIFYING, S.MITIGATED, S.FAILED}),
    # verifying -> running: an approximate result failed its check; fall back to retraining.
    S.VERIFYING: frozenset({S.COMPLETED, S.RUNNING, S.MITIGATED, S.FAILED}),
    # mitigated: the approximate result is active; the scheduled exact retrain closes it.
    S.MITIGATED: frozenset({S.VERIFYING, S.COMPLETED, S.FAILED}),
    S.FAILED: frozenset({S.RECEIVED}),
    S.COMPLETED: frozenset(),
    S.CANCELLED: frozenset(),
    S.DENIED: frozenset(),
}
TERMINAL: frozenset[RequestStatus] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)
OPEN: frozenset[RequestStatus] = frozenset(RequestStatus) - TERMINAL


class IllegalTransition(ProblemError):
    def __init__(self, *, current: str, attempted: str) -> None:
        super().__init__(
            409,
            f"The request is `{current}`; it cannot become `{attempted}`",
            slug="illegal-transition",
            current_status=current,
            attempted_status=attempted,
        )


def _move(
    session: Session,
    request: ErasureRequest,
    *,
    to: RequestStatus,
    actor: str,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
    event: str | None = None,
) -> None:
    current = RequestStatus(request.status)
    if to not in TRANSITIONS[current]:
        raise IllegalTransition(current=current.value, attempted=to.value)
    request.status = to.value
    request.status_reason = reason
    request.updated_at = utcnow()
    if to in TERMINAL:
        request.completed_at = request.updated_at
    if to == S.MITIGATED and request.mitigated_at is None:
        request.mitigated_at = request.updated_at
    payload: dict[str, Any] = {"from": current.value, "to": to.value}
    if reason:
        payload["reason"] = reason
    if data:
        payload.update(data)
    events.transitioned(session, request=request, previous_status=current.value)
    # The audit append takes the chain's lock: last, so the lock is held as briefly as possible.
    append_event(
        session,
        actor=actor,
        action=f"erasure_request.{event or to.value}",
        entity_type="erasure_request",
        entity_id=str(request.id),
        data=payload,
    )


def receive(session: Session, *, request: ErasureRequest, actor: str) -> None:
    """Record the new request's first event (it is created `received`)."""
    request.status = RequestStatus.RECEIVED
    session.add(request)
    session.flush()
    events.transitioned(session, request=request, previous_status=None)
    append_event(
        session,
        actor=actor,
        action="erasure_request.received",
        entity_type="erasure_request",
        entity_id=str(request.id),
        data={"to": RequestStatus.RECEIVED.value, "due_at": request.due_at.isoformat()},
    )


def hold_for_approval(session: Session, *, request: ErasureRequest, actor: str) -> None:
    _move(session, request, to=S.PENDING_APPROVAL, actor=actor, reason="client policy")


def approve(session: Session, *, request: ErasureRequest, actor: str) -> None:
    _move(session, request, to=S.APPROVED, actor=actor)


def deny(session: Session, *, request: ErasureRequest, actor: str, reason: str) -> None:
    _move(session, request, to=S.DENIED, actor=actor, reason=reason)


def start_planning(session: Session, *, request: ErasureRequest, actor: str) -> None:
    _move(session, request, to=S.PLANNING, actor=actor)


def mark_planned(
    session: Session, *, request: ErasureRequest, actor: str, summary: dict[str, Any]
) -> None:
    _move(session, request, to=S.PLANNED, actor=actor, data=summary)


def complete_without_data(
    session: Session, *, request: ErasureRequest, actor: str, summary: dict[str, Any]
) -> None:
    _move(
        session, request, to=S.COMPLETED, actor=actor, reason="no training data found", data=summary
    )


def advance(
    session: Session,
    *,
    request: ErasureRequest,
    to: RequestStatus,
    actor: str,
    reason: str | None = None,
    event: str | None = None,
) -> None:
    """A move decided from the request's jobs (`app.erasure.progress`): running, verifying,
    mitigated, back to running (`event="fallback"`), or failed."""
    _move(session, request, to=to, actor=actor, reason=reason, event=event)


def complete(
    session: Session,
    *,
    request: ErasureRequest,
    actor: str,
    summary: dict[str, Any],
    reason: str | None = None,
) -> None:
    _move(session, request, to=S.COMPLETED, actor=actor, reason=reason, data=summary)


def cancel(session: Session, *, request: ErasureRequest, actor: str) -> None:
    _move(session, request, to=S.CANCELLED, actor=actor)


def retry(session: Session, *, request: ErasureRequest, actor: str) -> None:
    """A failed request starts a new attempt: only the jobs planned from now on count."""
    _move(session, request, to=S.RECEIVED, actor=actor, event="retried")
    request.attempt += 1
