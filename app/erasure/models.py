from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime, new_id, utcnow


class ErasureRequest(Base):
    """An Art. 17 request. Identities are kept only as keyed hashes; `lifecycle` moves `status`."""

    __tablename__ = "erasure_requests"
    __table_args__ = (
        Index("ix_erasure_requests_client_received", "client_id", "received_at", "id"),
        Index("ix_erasure_requests_status_due", "status", "due_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("api_clients.id"))
    status: Mapped[str] = mapped_column(String(20))
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    reference: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    callback_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    identities: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_extension_months: Mapped[int] = mapped_column(Integer, default=0)
    due_extension_reason: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    plan: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # When every affected model first stopped exposing the person (approximate mitigation).
    mitigated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # When the scheduled exact retrain should have closed it (its start plus the last run).
    exact_expected_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # When its records, features and identities were deleted (the certificate follows once
    # every artifact that held them is confirmed gone).
    data_purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Raised by an admin retry: only the jobs of the current attempt decide the status.
    attempt: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
