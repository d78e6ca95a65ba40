"""Appending to and checking the audit chain."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event as orm_events
from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from app.audit.chain import GENESIS_HASH, canonical_event, link_hash
from app.audit.models import AuditEvent
from app.audit.schemas import BrokenLink, ChainVerification
from app.core.db import utcnow

_CHAIN_LOCK_KEY = 0x1E7E_A0D1  # arbitrary, constant: serializes appends across processes

SYSTEM_ACTOR = "system"
_PENDING = "lethe_audit_pending"


@dataclass(frozen=True)
class PendingEvent:
    occurred_at: datetime
    actor: str
    action: str
    entity_type: str
    entity_id: str
    data: dict[str, Any]


def append_event(
    session: Session,
    *,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str,
    data: dict[str, Any] | None = None,
) -> PendingEvent:
    """Add one event to the caller's transaction. It is chained and written just before the
    transaction commits, and discarded if it rolls back."""
    event = PendingEvent(
        occurred_at=utcnow(),
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        data=data or {},
    )
    session.info.setdefault(_PENDING, []).append(event)
    return event


def _lock_and_read_head(session: Session) -> tuple[int, str]:
    if session.get_bind().dialect.name == "postgresql":
        # One round trip: the function takes the chain's lock, then reads the head it guards.
        head = session.execute(
            text("SELECT seq, hash FROM lethe_audit_lock_head(:k)"), {"k": _CHAIN_LOCK_KEY}
        ).first()
    else:  # SQLite transactions begin IMMEDIATE: writers are already serialized
        head = session.execute(
            select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
        ).first()
    return (head.seq, head.hash) if head else (0, GENESIS_HASH)


def _write_pending(session: Session) -> None:
    """Chain and insert the transaction's events as its last statements: the chain's lock is
    held from here to the commit only, however long the transaction ran before."""
    pending: list[PendingEvent] = session.info.pop(_PENDING, [])
    if not pending:
        return
    seq, prev_hash = _lock_and_read_head(session)
    rows = []
    for event in pending:
        seq += 1
        canonical = canonical_event(
            seq=seq,
            occurred_at=event.occurred_at,
            actor=event.actor,
            action=event.action,
            entity_type=event.entity_type,
            entity_id=event.entity_id,
            data=event.data,
        )
        link = link_hash(prev_hash, canonical)
        rows.append({**asdict(event), "seq": seq, "prev_hash": prev_hash, "hash": link})
        prev_hash = link
    session.execute(insert(AuditEvent), rows)


def _discard_pending(session: Session, transaction: Any) -> None:
    # Only when the outermost transaction ends (committed: already written; rolled back or
    # closed: discarded). A savepoint rolling back leaves the outer transaction's events be.
    if transaction.parent is None:
        session.info.pop(_PENDING, None)


orm_events.listen(Session, "before_commit", _write_pending)
orm_events.listen(Session, "after_transaction_end", _discard_pending)


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
