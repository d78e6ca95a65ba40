"""The suppression list: identities erased on request, as keyed hashes only, and the clients
that have since stated a lawful basis to process one of them again."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime, new_id, utcnow


class Suppression(Base):
    """An erased identity: `(type, hash)` as `subject_identities` keeps it, never the value."""

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("hash", "type", name="uq_suppressions_hash_type"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    type: Mapped[str] = mapped_column(String(50))
    hash: Mapped[str] = mapped_column(String(64))
    suppressed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The erasure request whose purge (or no-data completion) suppressed it, the latest one.
    request_id: Mapped[uuid.UUID]


class SuppressionOverride(Base):
    """A client's lawful basis for processing a suppressed identity again (its datasets only)."""

    __tablename__ = "suppression_overrides"
    __table_args__ = (
        UniqueConstraint(
            "suppression_id", "client_id", name="uq_suppression_overrides_suppression_client"
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    suppression_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("suppressions.id", ondelete="CASCADE")
    )
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("api_clients.id"))
    basis: Mapped[str] = mapped_column(String(30))
    note: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    actor: Mapped[str] = mapped_column(String(64))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
