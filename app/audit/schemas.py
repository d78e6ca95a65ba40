from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    occurred_at: datetime
    actor: str
    action: str
    entity_type: str
    entity_id: str
    data: dict[str, Any]
    prev_hash: str
    hash: str


class BrokenLink(BaseModel):
    seq: int
    reason: str


class ChainVerification(BaseModel):
    ok: bool
    events_checked: int
    head_seq: int | None
    head_hash: str | None
    first_broken: BrokenLink | None


class AuditEventPage(BaseModel):
    items: list[AuditEventOut]
    next_after_seq: int | None


class SignedCheckpoint(BaseModel):
    jws: str
    claims: dict[str, Any]


class CertificateOut(BaseModel):
    request_id: str
    jws: str
    claims: dict[str, Any]
    kid: str
    jwks_url: str = "/v1/.well-known/jwks.json"
