"""Erasure certificates: signed, self-contained statements an auditor can verify offline."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.audit.enums import Guarantee
from app.audit.models import ErasureCertificate
from app.audit.service import chain_head
from app.audit.signing import load_signing_key, sign_claims
from app.core.config import get_settings
from app.core.db import utcnow

CERTIFICATE_TYPE = "lethe-erasure-certificate+jws"


def issue_certificate(
    session: Session,
    *,
    request_id: uuid.UUID,
    subject_hashes: list[str],
    received_at: datetime,
    records_erased: int,
    models: list[dict[str, Any]],
    data_purge: dict[str, int],
    guarantee: Guarantee = Guarantee.EXACT,
    mitigated_at: datetime | None = None,
    extra_claims: dict[str, Any] | None = None,
) -> ErasureCertificate:
    """Sign and store the certificate in the caller's transaction (idempotent per request)."""
    existing = session.get(ErasureCertificate, request_id)
    if existing is not None:
        return existing
    key = load_signing_key(get_settings().resolved_signing_key_file)
    head = chain_head(session)
    issued_at = utcnow()
    claims = {
        "iss": "lethe",
        "sub": str(request_id),
        "iat": int(issued_at.timestamp()),
        "request_id": str(request_id),
        "subject_hashes": subject_hashes,
        "received_at": received_at.isoformat(),
        "completed_at": issued_at.isoformat(),
        "guarantee": guarantee.value,
        "mitigated_at": mitigated_at.isoformat() if mitigated_at else None,
        "records_erased": records_erased,
        "models": models,
        "data_purge": data_purge,
        "audit_chain_head": {"seq": head[0], "hash": head[1]} if head else None,
        **(extra_claims or {}),
    }
    certificate = ErasureCertificate(
        request_id=request_id,
        jws=sign_claims(key, claims, typ=CERTIFICATE_TYPE),
        claims=claims,
        kid=key.kid or "",
        issued_at=issued_at,
    )
    session.add(certificate)
    session.flush()
    return certificate


NO_TRAINING_DATA = "no_training_data_found"


def issue_no_data_certificate(
    session: Session, *, request_id: uuid.UUID, subject_hashes: list[str], received_at: datetime
) -> ErasureCertificate:
    """The certificate of a request for which no training record was found: it states that
    finding, with nothing erased and no model concerned, and anchors the chain head that
    includes the request's completion."""
    return issue_certificate(
        session,
        request_id=request_id,
        subject_hashes=subject_hashes,
        received_at=received_at,
        records_erased=0,
        models=[],
        data_purge={"records_deleted": 0, "subjects_deleted": 0},
        extra_claims={"outcome": NO_TRAINING_DATA},
    )
