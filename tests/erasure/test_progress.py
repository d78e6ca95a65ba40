"""The one rule that moves a request from its jobs (`progress.next_step`), over a table, and
its application to a request on embedded SQLite."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from app.erasure.enums import RequestStatus as S
from app.erasure.progress import NO_MODEL_REASON, JobView, Step, next_step
from app.jobs.enums import JobKind as K
from app.jobs.enums import JobStage as G
from app.jobs.enums import JobStatus as J

FAILED_ID = uuid.UUID(int=7)
MODEL_A, MODEL_B = uuid.UUID(int=1), uuid.UUID(int=2)


def job(
    status: J,
    stage: G = G.QUEUED,
    *,
    kind: K = K.UNLEARN,
    model: uuid.UUID = MODEL_A,
    fallback: str | None = None,
    result: bool = False,
) -> JobView:
    return JobView(
        id=FAILED_ID if status == J.FAILED else uuid.uuid4(),
        status=status,
        stage=G.DONE if status == J.SUCCEEDED else stage,
        kind=kind,
        model_id=model,
        error="boom" if status == J.FAILED else None,
        fallback_reason=fallback,
        has_result=result or (status == J.SUCCEEDED and kind == K.UNLEARN),
    )


PENDING = job(J.PENDING)
RUNNING = job(J.RUNNING, G.RETRAINING)
VERIFYING = job(J.RUNNING, G.VERIFYING)
DONE = job(J.SUCCEEDED)
FAILED = job(J.FAILED, G.RETRAINING)
FELL_BACK = job(J.RUNNING, G.RETRAINING, fallback="gate failed")
FAIL_STEP = Step(S.FAILED, reason=f"unlearning job {FAILED_ID} failed: boom")
# Model B: another model of the same request.
B_PENDING = job(J.PENDING, model=MODEL_B)
B_RUNNING = job(J.RUNNING, G.RETRAINING, model=MODEL_B)
B_DONE = job(J.SUCCEEDED, model=MODEL_B)
# Mitigation of model A (approximate first, exact retrain scheduled).
M_PENDING = job(J.PENDING, kind=K.MITIGATE)
M_RUNNING = job(J.RUNNING, G.UNLEARNING, kind=K.MITIGATE)
M_CHECKING = job(J.RUNNING, G.VERIFYING, kind=K.MITIGATE)
M_APPLIED = job(J.SUCCEEDED, kind=K.MITIGATE, result=True)
M_NO_RESULT = job(J.SUCCEEDED, kind=K.MITIGATE)
M_FAILED = job(J.FAILED, kind=K.MITIGATE)

CASES = [
    # (current, jobs of the current attempt, next step)
    (S.PLANNED, [], Step(S.COMPLETED, reason=NO_MODEL_REASON)),
    (S.PLANNED, [PENDING], None),
    (S.PLANNED, [RUNNING], Step(S.RUNNING)),
    (S.PLANNED, [PENDING, B_RUNNING], Step(S.RUNNING)),
    (S.PLANNED, [FAILED], FAIL_STEP),
    (S.RUNNING, [RUNNING], None),
    (S.RUNNING, [DONE, B_PENDING], None),
    (S.RUNNING, [VERIFYING], Step(S.VERIFYING)),
    (S.RUNNING, [VERIFYING, B_RUNNING], None),
    (S.RUNNING, [VERIFYING, B_DONE], Step(S.VERIFYING)),
    (S.RUNNING, [DONE], Step(S.VERIFYING)),
    (S.RUNNING, [DONE, FAILED], FAIL_STEP),
    (S.VERIFYING, [VERIFYING], None),
    (S.VERIFYING, [B_DONE, VERIFYING], None),
    (S.VERIFYING, [DONE], Step(S.COMPLETED)),
    (S.VERIFYING, [DONE, B_DONE], Step(S.COMPLETED)),
    (S.VERIFYING, [FELL_BACK], Step(S.RUNNING, reason="gate failed", event="fallback")),
    (S.VERIFYING, [B_DONE, RUNNING], Step(S.RUNNING)),
    (S.VERIFYING, [B_DONE, PENDING], None),
    (S.VERIFYING, [VERIFYING, FAILED], FAIL_STEP),
    # Mitigation first, the exact retrain scheduled.
    (S.PLANNED, [M_PENDING, PENDING], None),
    (S.PLANNED, [M_RUNNING, PENDING], Step(S.RUNNING)),
    (S.RUNNING, [M_CHECKING, PENDING], None),
    (S.RUNNING, [M_APPLIED, PENDING], Step(S.MITIGATED)),
    (S.RUNNING, [M_APPLIED, PENDING, B_RUNNING], None),
    (S.RUNNING, [M_APPLIED, PENDING, B_DONE], Step(S.MITIGATED)),
    (S.RUNNING, [M_NO_RESULT, PENDING], None),
    (S.RUNNING, [M_FAILED, PENDING], None),
    (S.RUNNING, [M_FAILED, RUNNING], None),
    (S.RUNNING, [M_FAILED, DONE], Step(S.VERIFYING)),
    (S.MITIGATED, [M_APPLIED, PENDING], None),
    (S.MITIGATED, [M_APPLIED, RUNNING], None),
    (S.MITIGATED, [M_APPLIED, VERIFYING], Step(S.VERIFYING)),
    (S.MITIGATED, [M_APPLIED, DONE], Step(S.COMPLETED)),
    (S.MITIGATED, [M_APPLIED, FAILED], FAIL_STEP),
    (S.VERIFYING, [M_APPLIED, PENDING], Step(S.MITIGATED)),
    (S.RUNNING, [M_RUNNING, DONE], Step(S.VERIFYING)),
    (S.VERIFYING, [M_RUNNING, DONE], Step(S.COMPLETED)),
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
    from app.registry import purge

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
    # Its rows are gone; the certificate waits for the storage scrub the sweeper confirms.
    assert request.status == S.PLANNED and request.data_purged_at is not None
    assert "subject_ids" not in request.plan  # the purged subjects' ids go with them
    # The fast database is shared by the session: other tests' items may be pending too.
    [scrub] = [i for i in purge.pending(sqlite_session) if i.request_id == request.id]
    assert scrub.kind == "database"
    purge.confirm(scrub)
    progress.advance(sqlite_session, request=request)
    sqlite_session.commit()
    assert request.status == S.COMPLETED and request.status_reason == NO_MODEL_REASON
    actions = sqlite_session.scalars(
        select(AuditEvent.action).where(AuditEvent.entity_id == str(request.id))
    ).all()
    assert actions == ["erasure_request.data_purged", "erasure_request.completed"]
