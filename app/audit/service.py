"""Appending to and checking the audit chain."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.audit.chain import GENESIS_HASH, canonical_event, link_hash
from app.audit.models import AuditEvent
from app.audit.schemas import BrokenLink, ChainVerification
from app.core.db import utcnow

_CHAIN_LOCK_KEY = 0x1E7E_A0D1  # arbitrary, constant: serializes appends across processes

SYSTEM_ACTOR = "system"


def append_event(
    session: Session,
    *,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event in the caller's transaction (it commits or rolls back with it)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CHAIN_LOCK_KEY})
    head = session.execute(
        select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    seq, prev_hash = (head.seq + 1, head.hash) if head else (1, GENESIS_HASH)
    occurred_at = utcnow()
    payload = data or {}
    canonical = canonical_event(
        seq=seq,
        occurred_at=occurred_at,
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        data=payload,
    )
    event = AuditEvent(
        seq=seq,
        occurred_at=occurred_at,
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        data=payload,
        prev_hash=prev_hash,
        hash=link_hash(prev_hash, canonical),
    )
    session.add(event)
    session.flush()
    return event


def chain_head(session: Session) -> tuple[int, str] | None:
    head = session.execute(
        select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    return (head.seq, head.hash) if head else None


def verify_chain(session: Session, *, batch: int = 5000) -> ChainVerification:
    """Recompute every link in order; name the first one that does not hold."""
    expected_prev, expected_seq, checked = GENESIS_HASH, 1, 0
    last: AuditEvent | None = None
    after = 0
    while True:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.seq > after).order_by(AuditEvent.seq).limit(batch)
        ).all()
        if not rows:
            break
        for event in rows:
            reason = _broken_reason(event, expected_prev=expected_prev, expected_seq=expected_seq)
            if reason:
                return ChainVerification(
                    ok=False,
                    events_checked=checked,
                    head_seq=last.seq if last else None,
                    head_hash=last.hash if last else None,
                    first_broken=BrokenLink(seq=event.seq, reason=reason),
                )
            checked += 1
            expected_prev, expected_seq, last = event.hash, event.seq + 1, event
        after = rows[-1].seq
        session.expunge_all()
    return ChainVerification(
        ok=True,
        events_checked=checked,
        head_seq=last.seq if last else None,
        head_hash=last.hash if last else None,
        first_broken=None,
    )


def _broken_reason(event: AuditEvent, *, expected_prev: str, expected_seq: int) -> str | None:
    if event.seq != expected_seq:
        return f"sequence gap: expected {expected_seq}"
    if event.prev_hash != expected_prev:
        return "prev_hash does not match the previous event's hash"
    canonical = canonical_event(
        seq=event.seq,
        occurred_at=event.occurred_at,
        actor=event.actor,
        action=event.action,
        entity_type=event.entity_type,
        entity_id=event.entity_id,
        data=event.data,
    )
    if link_hash(event.prev_hash, canonical) != event.hash:
        return "content does not match its hash"
    return None


def list_events(
    session: Session,
    *,
    entity_type: str | None = None,
    entity_id: str | None = None,
    after_seq: int = 0,
    limit: int = 100,
) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.seq > after_seq)
    if entity_type is not None:
        query = query.where(AuditEvent.entity_type == entity_type)
    if entity_id is not None:
        query = query.where(AuditEvent.entity_id == entity_id)
    return list(session.scalars(query.order_by(AuditEvent.seq).limit(limit)))
