from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime, new_id, utcnow
from app.registry.enums import Finalize

BigId = BigInteger().with_variant(Integer, "sqlite")


class MlModel(Base):
    """A model Lethe trains and can therefore retrain: its dataset, architecture and strategy."""

    __tablename__ = "ml_models"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("api_clients.id"))
    dataset_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("datasets.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    architecture: Mapped[str] = mapped_column(String(100))
    strategy: Mapped[str] = mapped_column(String(20))
    shards: Mapped[int] = mapped_column(Integer, default=1)
    slices: Mapped[int] = mapped_column(Integer, default=1)
    shard_key: Mapped[str] = mapped_column(String(10), default="record")
    seed: Mapped[int] = mapped_column(Integer, default=0)
    epochs: Mapped[int | None] = mapped_column(Integer, nullable=True)
    aggregation: Mapped[str] = mapped_column(String(10), default="mean")
    num_classes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    input_shape: Mapped[list[int] | None] = mapped_column(JSON, nullable=True)
    approximate_policy: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    finalize: Mapped[str] = mapped_column(
        String(20), default=Finalize.EXACT.value, server_default=Finalize.EXACT.value
    )
    active_version_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    # A causal language model's pretrained base (`architecture: causal_lm` only).
    base_model_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("base_models.id"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PretrainedBase(Base):
    """A pretrained language model registered with Lethe (`lethe base-models add`). Its files
    are in the artifact store, each named by its SHA-256, and workers load them from there:
    nothing is fetched from a model hub. It holds no one's records: fine-tunes on it are what
    erasure retrains and purges, never the base."""

    __tablename__ = "base_models"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    model_type: Mapped[str] = mapped_column(String(50))
    parameters: Mapped[int] = mapped_column(BigInteger)
    # {file name: {"key": artifact key, "sha256": hex digest, "bytes": size}}
    files: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ModelVersion(Base):
    """One trained state of a model. `manifest` says exactly what it was trained on."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "number", name="uq_model_versions_number"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ml_models.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    status: Mapped[str] = mapped_column(String(20))  # VersionStatus
    method: Mapped[str] = mapped_column(String(50))
    exact: Mapped[bool] = mapped_column(Boolean, default=True)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    trained_records: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    job_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ShardCheckpoint(Base):
    """A stored slice checkpoint (or a monolithic model's weights) of a model."""

    __tablename__ = "shard_checkpoints"
    __table_args__ = (UniqueConstraint("model_id", "key", name="uq_shard_checkpoints_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ml_models.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    shard: Mapped[int] = mapped_column(Integer)
    slice: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PurgeItem(Base):
    """One thing that must be deleted because it held erased records: a checkpoint, an
    artifact or a reference model of a job's activation, or the database storage scrub after a
    request's rows were deleted. Recorded in the transaction that made it necessary; the
    sweeper deletes, confirms and retries until done. A request's certificate waits for its
    items."""

    __tablename__ = "purge_items"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(20))  # PurgeKind
    model_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True, index=True)
    job_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True, index=True)
    request_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True, index=True)
    key: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # The artifact store its files were deleted from, and how many stored object versions
    # (delete markers included) that removed; unset for the database scrub.
    deleted_from: Mapped[str | None] = mapped_column(String(200), nullable=True)
    versions_deleted: Mapped[int | None] = mapped_column(Integer, nullable=True)
