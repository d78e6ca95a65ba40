from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.audit import service
from app.audit.chain import GENESIS_HASH
from app.audit.schemas import (
    AuditEventOut,
    AuditEventPage,
    ChainVerification,
    CheckpointClaims,
    Jwks,
    SignedCheckpoint,
)
from app.audit.signing import jwks, load_signing_key, sign_claims
from app.core.auth import AdminClient
from app.core.config import get_settings
from app.core.db import SessionDep, utcnow
from app.core.pagination import MAX_LIMIT
from app.core.validation import INT64_MAX

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get("/verify", response_model=ChainVerification)
def verify(session: SessionDep, _: AdminClient) -> ChainVerification:
    return service.verify_chain(session)


@router.get("/events", response_model=AuditEventPage)
def export_events(
    session: SessionDep,
    _: AdminClient,
    after_seq: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT * 5)] = 500,
) -> AuditEventPage:
    events = service.list_events(session, after_seq=after_seq, limit=limit)
    return AuditEventPage(
        items=[AuditEventOut.model_validate(e) for e in events],
        next_after_seq=events[-1].seq if len(events) == limit else None,
    )


@router.get("/checkpoint", response_model=SignedCheckpoint)
def checkpoint(session: SessionDep, _: AdminClient) -> SignedCheckpoint:
    """The chain head, signed: keep it outside Lethe to detect a later rewrite of history."""
    head = service.chain_head(session)
    key = load_signing_key(get_settings().resolved_signing_key_file)
    claims = {
        "iss": "lethe",
        "head_seq": head[0] if head else 0,
        "head_hash": head[1] if head else GENESIS_HASH,
        "signed_at": utcnow().isoformat(),
    }
    return SignedCheckpoint(
        jws=sign_claims(key, claims, typ="lethe-audit-checkpoint+jws"),
        claims=CheckpointClaims.model_validate(claims),
    )


well_known = APIRouter(tags=["audit"])


@well_known.get("/v1/.well-known/jwks.json", response_model=Jwks)
def jwks_document() -> dict[str, Any]:
    """Public keys that verify certificates and checkpoints (no authentication)."""
    return jwks(load_signing_key(get_settings().resolved_signing_key_file))
