from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, JsonValue, with_config
from typing_extensions import TypedDict

from app.core.problems import Problem
from app.jobs.enums import JobKind, JobStage, JobStatus

# A typed dictionary that keeps members beyond the ones it names (`additionalProperties`).
OPEN = ConfigDict(extra="allow")


@with_config(OPEN)
class JobMetrics(TypedDict, total=False):
    """A job's figures, as recorded. Which appear depends on the job's kind and method; the
    ones named here are typed, others (per-method details) may appear as further members."""

    method: Annotated[str, Field(description="How the job did its work (`sisa`, ...).")]
    test_accuracy: float | None
    train_records: int
    test_records: int
    train_seconds: float
    erased_records: int
    verification: Annotated[
        dict[str, JsonValue] | None,
        Field(description="How the result was checked, and the figures of the check."),
    ]
    mitigation: str
    fallback_reason: str | None
    scheduled_by: Annotated[str, Field(description="What scheduled an exact retrain.")]


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: JobKind
    model_id: uuid.UUID
    status: JobStatus
    stage: JobStage
    progress: float
    attempts: int
    max_attempts: int
    error: str | None
    metrics: JobMetrics
    base_version_id: uuid.UUID | None
    result_version_id: uuid.UUID | None
    request_ids: list[uuid.UUID] = []
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    lease_expires_at: datetime | None


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None


class JobSummary(BaseModel):
    """One job of an erasure request, as the request lists it."""

    id: uuid.UUID
    kind: JobKind
    model_id: uuid.UUID
    status: JobStatus
    stage: JobStage
    progress: float
    link: str = Field(description="The job: `GET` it for its figures.")


class ModelBusy(Problem):
    """The model already has a job pending or running (409): `job_id` is that job."""

    job_id: uuid.UUID
