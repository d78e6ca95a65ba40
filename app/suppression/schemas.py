from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.core.validation import SafeMultilineText
from app.suppression.enums import LawfulBasis
from app.suppression.service import BasisClaim


class LawfulBasisIn(BaseModel):
    """The Art. 6(1) basis on which a record of an erased person may be processed again."""

    model_config = ConfigDict(extra="forbid")

    basis: LawfulBasis
    note: SafeMultilineText | None = Field(None, max_length=2000)

    def claim(self) -> BasisClaim:
        return BasisClaim(basis=self.basis, note=self.note)


class OverrideOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    client_id: uuid.UUID
    basis: LawfulBasis
    note: str | None
    actor: str
    granted_at: datetime


class SuppressionOut(BaseModel):
    """One erased identity: its type and when and by which request, never its value or hash."""

    id: uuid.UUID
    identity_type: str
    suppressed_at: datetime
    erasure_request_id: uuid.UUID
    lawful_basis_overrides: list[OverrideOut]


class SuppressionPage(BaseModel):
    items: list[SuppressionOut]
    next_cursor: str | None
