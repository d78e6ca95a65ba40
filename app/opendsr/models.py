from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime, new_id, utcnow


class OpenDsrRequest(Base):
    """An OpenDSR request and the erasure request that carries it out.

    Neither the identities (the erasure request keeps them hashed) nor `extensions` (which may
    carry processor-specific identities) are stored.
    """

    __tablename__ = "opendsr_requests"
    __table_args__ = (
        UniqueConstraint("client_id", "subject_request_id", name="uq_opendsr_client_subject"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("api_clients.id"))
    subject_request_id: Mapped[uuid.UUID]
    erasure_request_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("erasure_requests.id"), unique=True
    )
    regulation: Mapped[str] = mapped_column(String(16))
    subject_request_type: Mapped[str] = mapped_column(String(16))
    submitted_time: Mapped[datetime] = mapped_column(UTCDateTime)
    api_version: Mapped[str | None] = mapped_column(String(16), nullable=True)
    status_callback_urls: Mapped[list[str]] = mapped_column(JSON)
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    received_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
