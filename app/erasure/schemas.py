from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from app.core.problems import Problem
from app.core.validation import SafeMultilineText, SafeText
from app.erasure.enums import RequestStatus
from app.jobs.schemas import JobSummary
from app.lineage.identity import IdentityType
from app.lineage.schemas import IdentityIn


class ErasureRequestCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    identities: list[IdentityIn] = Field(min_length=1, max_length=20)
    reference: SafeText | None = Field(None, max_length=200)
    reason: SafeMultilineText | None = Field(None, max_length=2000)
    callback_url: AnyHttpUrl | None = None


class DenyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: SafeMultilineText = Field(
        min_length=3, max_length=2000, description="The Art. 17(3) exception that applies."
    )


class ExtendBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    months: int = Field(ge=1, le=2)
    reason: SafeMultilineText = Field(min_length=3, max_length=2000)


class DatasetPlan(BaseModel):
    dataset_id: uuid.UUID
    records: int


class ModelPlan(BaseModel):
    """A model trained on the person's records, and the job that erases them from it."""

    model_id: uuid.UUID
    job_id: uuid.UUID = Field(description="The job that closes the request for this model.")
    mitigation_job_id: uuid.UUID | None = Field(
        None, description="The approximate mitigation job, for a model that mitigates first."
    )
    records: int = Field(description="The person's records in the model's dataset.")


class PlanOut(BaseModel):
    records_found: int
    subjects_found: int
    datasets: list[DatasetPlan]
    models_affected: list[ModelPlan]


class RequestLinks(BaseModel):
    self: str
    events: str
    certificate: str = Field(description="Answers 409 until the request is completed.")


class ErasureRequestOut(BaseModel):
    id: uuid.UUID
    status: RequestStatus
    status_reason: str | None
    reference: str | None
    reason: str | None
    callback_url: str | None
    identity_types: list[IdentityType]
    received_at: datetime
    due_at: datetime
    overdue: bool
    due_extension_months: int
    due_extension_reason: str | None
    plan: PlanOut | None
    jobs: list[JobSummary]
    updated_at: datetime
    completed_at: datetime | None
    mitigated_at: datetime | None = Field(
        None, description="When every affected model stopped exposing the person (approximate)"
    )
    exact_expected_at: datetime | None = Field(
        None, description="When the scheduled exact erasure is expected to close the request"
    )
    links: RequestLinks


class ModelDebtOut(BaseModel):
    """Requests of one model mitigated (approximate) but not yet erased exactly."""

    model_config = ConfigDict(from_attributes=True)

    model_id: uuid.UUID
    requests: int
    oldest_received_at: datetime
    oldest_due_at: datetime
    exact_scheduled_at: datetime | None
    scheduled_by: str | None


class ErasureRequestPage(BaseModel):
    items: list[ErasureRequestOut]
    next_cursor: str | None


class RequestConflict(Problem):
    """The request's status does not allow this (409): `current_status` is its status now."""

    current_status: RequestStatus
