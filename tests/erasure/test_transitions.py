"""Every transition of the request state machine, allowed and refused, on embedded SQLite.

The table below is the documented contract (README, DESIGN): it is written out here rather
than read from `lifecycle.TRANSITIONS`, so a change to the lifecycle that breaks it fails.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.core.db import utcnow
from app.erasure import lifecycle
from app.erasure.enums import RequestStatus as S
from app.erasure.models import ErasureRequest

ALLOWED: dict[S, set[S]] = {
    S.RECEIVED: {S.PENDING_APPROVAL, S.PLANNING, S.CANCELLED},
    S.PENDING_APPROVAL: {S.APPROVED, S.DENIED, S.CANCELLED},
    S.APPROVED: {S.PLANNING, S.CANCELLED},
    S.PLANNING: {S.PLANNED, S.COMPLETED, S.FAILED, S.CANCELLED},
    S.PLANNED: {S.RUNNING, S.COMPLETED, S.FAILED, S.CANCELLED},
    S.RUNNING: {S.VERIFYING, S.MITIGATED, S.FAILED},
    S.VERIFYING: {S.COMPLETED, S.RUNNING, S.MITIGATED, S.FAILED},
    S.MITIGATED: {S.VERIFYING, S.COMPLETED, S.FAILED},
    S.FAILED: {S.RECEIVED},
    S.COMPLETED: set(),
    S.CANCELLED: set(),
    S.DENIED: set(),
}
ACTOR = "client:test"


def _move(session, request: ErasureRequest, to: S) -> None:
    """The public lifecycle function that leads to `to`."""
    moves = {
        S.RECEIVED: lambda: lifecycle.retry(session, request=request, actor=ACTOR),
        S.PENDING_APPROVAL: lambda: lifecycle.hold_for_approval(
            session, request=request, actor=ACTOR
        ),
        S.APPROVED: lambda: lifecycle.approve(session, request=request, actor=ACTOR),
        S.DENIED: lambda: lifecycle.deny(session, request=request, actor=ACTOR, reason="17(3)"),
        S.PLANNING: lambda: lifecycle.start_planning(session, request=request, actor=ACTOR),
        S.PLANNED: lambda: lifecycle.mark_planned(
            session, request=request, actor=ACTOR, summary={"records_found": 1}
        ),
        S.COMPLETED: lambda: lifecycle.complete(
            session, request=request, actor=ACTOR, summary={"records_erased": 1}
        ),
        S.CANCELLED: lambda: lifecycle.cancel(session, request=request, actor=ACTOR),
    }
    move = moves.get(to) or (
        lambda: lifecycle.advance(session, request=request, to=to, actor=ACTOR)
    )
    move()


def _request_in(session, client_id, status: S) -> ErasureRequest:
    now = utcnow()
    request = ErasureRequest(
        client_id=client_id,
        status=status,
        identities=[{"type": "email", "hash": "0" * 64}],
        received_at=now,
        due_at=now + timedelta(days=30),
        updated_at=now,
    )
    session.add(request)
    session.flush()
    return request


def _events(session, request: ErasureRequest) -> list[str]:
    return list(
        session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.entity_id == str(request.id))
            .order_by(AuditEvent.seq)
        )
    )


def test_the_table_covers_every_status():
    assert set(ALLOWED) == set(S)
    assert {S.COMPLETED, S.CANCELLED, S.DENIED} == lifecycle.TERMINAL


@pytest.mark.parametrize("current", list(S))
@pytest.mark.parametrize("target", list(S))
def test_transition(sqlite_session, client_id, current, target):
    request = _request_in(sqlite_session, client_id, current)
    attempt = request.attempt
    if target in ALLOWED[current]:
        _move(sqlite_session, request, target)
        sqlite_session.commit()  # audit events are chained and written at commit
        assert request.status == target
        assert (request.completed_at is not None) == (target in lifecycle.TERMINAL)
        assert (request.mitigated_at is not None) == (target == S.MITIGATED)
        [action] = _events(sqlite_session, request)
        assert action.startswith("erasure_request.")
        assert request.attempt == attempt + (1 if target == S.RECEIVED else 0)
    else:
        with pytest.raises(lifecycle.IllegalTransition) as refused:
            _move(sqlite_session, request, target)
        assert refused.value.status == 409
        assert refused.value.extensions["current_status"] == current.value
        assert refused.value.extensions["attempted_status"] == target.value
        assert request.status == current
        assert request.attempt == attempt
        sqlite_session.commit()
        assert _events(sqlite_session, request) == []


def test_transition_events_name_what_happened(sqlite_session, client_id):
    request = _request_in(sqlite_session, client_id, S.VERIFYING)
    lifecycle.advance(
        sqlite_session, request=request, to=S.RUNNING, actor=ACTOR, reason="gate", event="fallback"
    )
    lifecycle.advance(sqlite_session, request=request, to=S.FAILED, actor=ACTOR, reason="boom")
    lifecycle.retry(sqlite_session, request=request, actor=ACTOR)
    sqlite_session.commit()
    assert _events(sqlite_session, request) == [
        "erasure_request.fallback",
        "erasure_request.failed",
        "erasure_request.retried",
    ]
    assert request.status_reason is None and request.attempt == 2


def test_every_status_move_goes_through_the_lifecycle():
    """No module but the lifecycle assigns a request's status."""
    import re
    from pathlib import Path

    assignment = re.compile(r"\brequest\.status\s*=(?!=)")
    root = Path(__file__).resolve().parents[2]
    writers = [
        path.relative_to(root).as_posix()
        for folder in ("app", "workers")
        for path in (root / folder).rglob("*.py")
        if assignment.search(path.read_text())
    ]
    assert writers == ["app/erasure/lifecycle.py"]
