"""The one rule that moves a request from its jobs (`progress.next_step`), over a table, and
its application to a request on embedded SQLite."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from app.erasure.enums import RequestStatus as S
from app.erasure.progress import NO_MODEL_REASON, JobView, Step, next_step
from app.jobs.enums import JobStage as G
from app.jobs.enums import JobStatus as J

FAILED_ID = uuid.UUID(int=7)


def job(status: J, stage: G = G.QUEUED, *, fallback: str | None = None) -> JobView:
    return JobView(
        id=FAILED_ID if status == J.FAILED else uuid.uuid4(),
        status=status,
        stage=G.DONE if status == J.SUCCEEDED else stage,
        error="boom" if status == J.FAILED else None,
        fallback_reason=fallback,
    )


PENDING = job(J.PENDING)
RUNNING = job(J.RUNNING, G.RETRAINING)
VERIFYING = job(J.RUNNING, G.VERIFYING)
DONE = job(J.SUCCEEDED)
FAILED = job(J.FAILED, G.RETRAINING)
FELL_BACK = job(J.RUNNING, G.RETRAINING, fallback="gate failed")
FAIL_STEP = Step(S.FAILED, reason=f"unlearning job {FAILED_ID} failed: boom")

CASES = [
    # (current, jobs of the current attempt, next step)
    (S.PLANNED, [], Step(S.COMPLETED, reason=NO_MODEL_REASON)),
    (S.PLANNED, [PENDING], None),
    (S.PLANNED, [RUNNING], Step(S.RUNNING)),
    (S.PLANNED, [PENDING, RUNNING], Step(S.RUNNING)),
    (S.PLANNED, [FAILED], FAIL_STEP),
    (S.RUNNING, [RUNNING], None),
    (S.RUNNING, [DONE, PENDING], None),
    (S.RUNNING, [VERIFYING], Step(S.VERIFYING)),
    (S.RUNNING, [VERIFYING, RUNNING], None),
    (S.RUNNING, [VERIFYING, DONE], Step(S.VERIFYING)),
    (S.RUNNING, [DONE], Step(S.VERIFYING)),
    (S.RUNNING, [DONE, FAILED], FAIL_STEP),
    (S.VERIFYING, [VERIFYING], None),
    (S.VERIFYING, [DONE, VERIFYING], None),
    (S.VERIFYING, [DONE], Step(S.COMPLETED)),
    (S.VERIFYING, [DONE, DONE], Step(S.COMPLETED)),
    (S.VERIFYING, [FELL_BACK], Step(S.RUNNING, reason="gate failed", event="fallback")),
    (S.VERIFYING, [DONE, RUNNING], Step(S.RUNNING)),
    (S.VERIFYING, [DONE, PENDING], None),
    (S.VERIFYING, [VERIFYING, FAILED], FAIL_STEP),
    # Requests that do not follow their jobs.
    (S.RECEIVED, [FAILED], None),
    (S.PLANNING, [], None),
    (S.FAILED, [DONE], None),
    (S.COMPLETED, [DONE], None),
    (S.CANCELLED, [], None),
]


@pytest.mark.parametrize(("current", "jobs", "expected"), CASES)
def test_next_step(current, jobs, expected):
    assert next_step(current, jobs) == expected


def test_following_the_rule_walks_only_legal_transitions():
    """From `planned`, applying the rule as jobs change never attempts an illegal move."""
    from app.erasure.lifecycle import TRANSITIONS

    for _, jobs, _ in CASES:
        current = S.PLANNED
        for _ in range(4):
            step = next_step(current, jobs)
            if step is None:
                break
            assert step.to in TRANSITIONS[current], (current, step)
            current = step.to


def test_a_planned_request_without_models_completes_with_one_event(sqlite_session, client_id):
    from sqlalchemy import select

    from app.audit.models import AuditEvent
    from app.core.db import utcnow
    from app.erasure import progress
    from app.erasure.models import ErasureRequest

    now = utcnow()
    request = ErasureRequest(
        client_id=client_id,
        status=S.PLANNED,
        identities=[{"type": "email", "hash": "1" * 64}],
        received_at=now,
        due_at=now + timedelta(days=30),
        updated_at=now,
        plan={"subject_ids": []},
    )
    sqlite_session.add(request)
    sqlite_session.flush()
    progress.advance(sqlite_session, request=request)
    sqlite_session.commit()
    assert request.status == S.COMPLETED and request.status_reason == NO_MODEL_REASON
    actions = sqlite_session.scalars(
        select(AuditEvent.action).where(AuditEvent.entity_id == str(request.id))
    ).all()
    assert actions == ["erasure_request.data_purged", "erasure_request.completed"]
