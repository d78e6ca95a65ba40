from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime, new_id, utcnow
from app.jobs.enums import JobKind, JobStage, JobStatus, ShardStatus

_ONE_RUNNING = f"status = '{JobStatus.RUNNING}'"
_ONE_PENDING_UNLEARN = f"status = '{JobStatus.PENDING}' AND kind = '{JobKind.UNLEARN}'"
_ONE_PENDING_MITIGATE = f"status = '{JobStatus.PENDING}' AND kind = '{JobKind.MITIGATE}'"


class Job(Base):
    """A training or unlearning job. The row is the truth; Celery messages only ring the bell."""

    __tablename__ = "jobs"
    __table_args__ = (
        # Never two running jobs for one model, and one pending unlearning batch at a time.
        Index(
            "uq_jobs_one_running_per_model",
            "model_id",
            unique=True,
            postgresql_where=text(_ONE_RUNNING),
            sqlite_where=text(_ONE_RUNNING),
        ),
        Index(
            "uq_jobs_one_pending_unlearn_per_model",
            "model_id",
            unique=True,
            postgresql_where=text(_ONE_PENDING_UNLEARN),
            sqlite_where=text(_ONE_PENDING_UNLEARN),
        ),
        Index(
            "uq_jobs_one_pending_mitigate_per_model",
            "model_id",
            unique=True,
            postgresql_where=text(_ONE_PENDING_MITIGATE),
            sqlite_where=text(_ONE_PENDING_MITIGATE),
        ),
        Index("ix_jobs_status_lease", "status", "lease_expires_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(20))  # JobKind
    # The client that owns the model; null only for jobs created before owners were recorded.
    client_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ml_models.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20))  # JobStatus
    stage: Mapped[str] = mapped_column(String(50), default=JobStage.QUEUED.value)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    base_version_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    result_version_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class JobRequest(Base):
    """Which erasure requests an unlearning job carries out (requests for one model batch)."""

    __tablename__ = "job_requests"

    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    request_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("erasure_requests.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    # The request's attempt this job serves (an admin retry starts a new attempt).
    attempt: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class JobShard(Base):
    """One shard retrain of a fanned-out SISA unlearning job."""

    __tablename__ = "job_shards"

    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    shard: Mapped[int] = mapped_column(Integer, primary_key=True)
    from_slice: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default=ShardStatus.PENDING.value)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
