"""The erasure domain's figures in `/metrics`: requests by status, overdue requests, time to
completion, and the unlearning jobs that carry them out (failures included).

Each function is a `FigureSource` (see `app.core.metrics`), read-only and computed in SQL.
Erasure debt (requests mitigated but not yet exact) is one more source.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from sqlalchemy import ColumnElement, Float, case, cast, func, select
from sqlalchemy.orm import Session

from app.core.db import utcnow
from app.core.metrics import register_figures
from app.erasure.debt import erasure_debt
from app.erasure.enums import RequestStatus
from app.erasure.lifecycle import OPEN
from app.erasure.models import ErasureRequest
from app.jobs.enums import JobKind, JobStatus
from app.jobs.models import Job

# Time from receipt to completion: a minute to the three-month legal maximum.
COMPLETION_BUCKETS_SECONDS = (60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400)


@register_figures
def request_figures(session: Session) -> Iterator[Metric]:
    by_status = GaugeMetricFamily(
        "lethe_erasure_requests", "Erasure requests by status", labels=["status"]
    )
    counts = dict(
        session.execute(
            select(ErasureRequest.status, func.count()).group_by(ErasureRequest.status)
        ).all()
    )
    for status in RequestStatus:
        by_status.add_metric([status.value], counts.get(status.value, 0))
    yield by_status
    overdue = session.scalar(
        select(func.count()).where(
            ErasureRequest.status.in_([s.value for s in OPEN]), ErasureRequest.due_at < utcnow()
        )
    )
    yield GaugeMetricFamily(
        "lethe_erasure_requests_overdue",
        "Open erasure requests past their due date",
        value=overdue or 0,
    )


def _seconds_to_complete(session: Session) -> ColumnElement[float]:
    if session.get_bind().dialect.name == "sqlite":
        days = func.julianday(ErasureRequest.completed_at) - func.julianday(
            ErasureRequest.received_at
        )
        return cast(days * 86400.0, Float)
    return cast(
        func.extract("epoch", ErasureRequest.completed_at - ErasureRequest.received_at), Float
    )


@register_figures
def completion_figures(session: Session) -> Iterator[Metric]:
    seconds = _seconds_to_complete(session)
    columns = [
        func.sum(case((seconds <= bound, 1), else_=0)) for bound in COMPLETION_BUCKETS_SECONDS
    ]
    row = session.execute(
        select(func.count(), func.coalesce(func.sum(seconds), 0.0), *columns).where(
            ErasureRequest.status == RequestStatus.COMPLETED.value,
            ErasureRequest.completed_at.is_not(None),
        )
    ).one()
    total, seconds_sum, *cumulative = row
    buckets = [
        (str(float(bound)), int(count or 0))
        for bound, count in zip(COMPLETION_BUCKETS_SECONDS, cumulative, strict=True)
    ]
    buckets.append(("+Inf", int(total)))
    yield HistogramMetricFamily(
        "lethe_erasure_completion_seconds",
        "Time from receipt to completion of completed erasure requests",
        buckets=buckets,
        sum_value=float(seconds_sum),
    )


@register_figures
def job_figures(session: Session) -> Iterator[Metric]:
    jobs = GaugeMetricFamily("lethe_jobs", "Jobs by kind and status", labels=["kind", "status"])
    failures = CounterMetricFamily(
        "lethe_job_failures", "Jobs that failed after their last attempt", labels=["kind"]
    )
    counts = {
        (kind, status): n
        for kind, status, n in session.execute(
            select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status)
        ).all()
    }
    for kind in JobKind:
        for status in JobStatus:
            jobs.add_metric([kind.value, status.value], counts.get((kind.value, status.value), 0))
        failures.add_metric([kind.value], counts.get((kind.value, JobStatus.FAILED.value), 0))
    yield jobs
    yield failures


@register_figures
def debt_figures(session: Session) -> Iterator[Metric]:
    requests = GaugeMetricFamily(
        "lethe_erasure_debt_requests",
        "Requests mitigated (approximate) but not yet erased exactly, per model",
        labels=["model_id"],
    )
    for debt in erasure_debt(session):
        requests.add_metric([str(debt.model_id)], debt.requests)
    yield requests
