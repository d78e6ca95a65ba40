from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime, new_id, utcnow

BigId = BigInteger().with_variant(Integer, "sqlite")

SPLITS = ("train", "holdout", "test")
TABULAR = "tabular"  # features and a label
TEXT = "text"  # a text, or a prompt and its completion, for language models
RECORD_KINDS = (TABULAR, TEXT)


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("api_clients.id"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    feature_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Set by the first records added; a dataset holds one kind only.
    record_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DataSubject(Base):
    __tablename__ = "data_subjects"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SubjectIdentity(Base):
    __tablename__ = "subject_identities"
    __table_args__ = (UniqueConstraint("hash", "type", name="uq_subject_identities_hash_type"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    subject_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("data_subjects.id", ondelete="CASCADE"), index=True
    )
    type: Mapped[str] = mapped_column(String(50))
    hash: Mapped[str] = mapped_column(String(64))


class TrainingRecord(Base):
    """One training example: little-endian float32 `features` and a `label`, or, in a text
    dataset, a `completion` (the text) with an optional `prompt`, where `features` is empty and
    `label` 0. Purging deletes the row."""

    __tablename__ = "training_records"
    __table_args__ = (
        UniqueConstraint("dataset_id", "key", name="uq_training_records_dataset_key"),
        Index("ix_training_records_subject", "subject_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    dataset_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    subject_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("data_subjects.id"))
    split: Mapped[str] = mapped_column(String(8))
    label: Mapped[int] = mapped_column(Integer)
    features: Mapped[bytes] = mapped_column(LargeBinary)
    prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    completion: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Set when an erasure request claims the record: from then on no training sees it.
    erasure_request_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
