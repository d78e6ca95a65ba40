"""Remembering erased identities, finding the ones a client may not process, and lifting a
suppression for a client that states a lawful basis. Identities are `(type, keyed hash)` pairs
as the lineage domain stores them; no identity value ever reaches this package."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, exists, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.audit.service import append_event
from app.core.db import new_id, one_of, utcnow
from app.core.pagination import newest_first
from app.suppression.enums import LawfulBasis
from app.suppression.models import Suppression, SuppressionOverride

Identity = tuple[str, str]  # (identity type, keyed hash)

_LOOKUP_CHUNK = 5000


@dataclass(frozen=True, slots=True)
class BasisClaim:
    """A lawful basis a caller states for processing a record's identities again."""

    basis: LawfulBasis
    note: str | None = None


@dataclass(frozen=True)
class Blocked:
    """A suppressed identity that a client has no lawful basis for."""

    suppression_id: uuid.UUID
    request_id: uuid.UUID


def _insert(session: Session, model: type[Any]) -> Any:
    """The dialect's INSERT, which has `on_conflict_do_*`."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


def remember(session: Session, *, identities: Iterable[Identity], request_id: uuid.UUID) -> int:
    """Suppress these identities on behalf of an erasure request; returns how many. A new
    erasure of an identity already suppressed re-arms it: every client's lawful basis for it
    is dropped (the person objected again)."""
    pairs = sorted(set(identities))
    if not pairs:
        return 0
    now = utcnow()
    insert = _insert(session, Suppression)
    session.execute(
        insert.on_conflict_do_update(
            index_elements=["hash", "type"],
            set_={"suppressed_at": insert.excluded.suppressed_at, "request_id": request_id},
        ),
        [
            {"id": new_id(), "type": t, "hash": h, "suppressed_at": now, "request_id": request_id}
            for t, h in pairs
        ],
    )
    wanted = set(pairs)
    ids = [
        s
        for t, h, s in session.execute(
            select(Suppression.type, Suppression.hash, Suppression.id).where(
                one_of(session, Suppression.hash, [h for _, h in pairs])
            )
        )
        if (t, h) in wanted
    ]
    session.execute(delete(SuppressionOverride).where(SuppressionOverride.suppression_id.in_(ids)))
    return len(pairs)


def _no_basis_of(client_id: uuid.UUID | ColumnElement[uuid.UUID]) -> ColumnElement[bool]:
    return ~exists().where(
        SuppressionOverride.suppression_id == Suppression.id,
        SuppressionOverride.client_id == client_id,
    )


def blocked(
    session: Session, *, client_id: uuid.UUID, identities: Sequence[Identity]
) -> dict[Identity, Blocked]:
    """Those of `identities` that are suppressed and that `client_id` has no lawful basis for."""
    wanted = set(identities)
    found: dict[Identity, Blocked] = {}
    unique = sorted({h for _, h in wanted})
    for start in range(0, len(unique), _LOOKUP_CHUNK):
        rows = session.execute(
            select(Suppression.type, Suppression.hash, Suppression.id, Suppression.request_id)
            .where(one_of(session, Suppression.hash, unique[start : start + _LOOKUP_CHUNK]))
            .where(_no_basis_of(client_id))
        )
        for type_, hash_, suppression_id, request_id in rows:
            if (type_, hash_) in wanted:
                found[(type_, hash_)] = Blocked(
                    suppression_id=suppression_id, request_id=request_id
                )
    return found


def blocked_identities(*, client_id: uuid.UUID | ColumnElement[uuid.UUID]) -> Select[str, str]:
    """`(type, hash)` of every identity suppressed without a lawful basis of `client_id` (a
    value or a column): a subquery for keeping those people's records out of training."""
    return select(Suppression.type, Suppression.hash).where(_no_basis_of(client_id))


def lift(
    session: Session,
    *,
    client_id: uuid.UUID,
    grants: Mapping[Identity, tuple[Blocked, BasisClaim]],
    dataset_id: uuid.UUID,
    actor: str,
) -> int:
    """Record `client_id`'s lawful basis for each suppressed identity in `grants`, in the
    caller's transaction, each audited (basis, note, identity type; never the identity).
    Returns how many suppressions were lifted for the client."""
    lifted = 0
    for (identity_type, _), (found, claim) in sorted(grants.items()):
        insert = _insert(session, SuppressionOverride)
        inserted = session.execute(
            insert.values(
                id=new_id(),
                suppression_id=found.suppression_id,
                client_id=client_id,
                basis=claim.basis.value,
                note=claim.note,
                actor=actor,
                granted_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["suppression_id", "client_id"])
            .returning(SuppressionOverride.id)
        ).scalar()
        if inserted is None:  # another call lifted it for this client a moment ago
            continue
        lifted += 1
        data: dict[str, Any] = {
            "client_id": str(client_id),
            "dataset_id": str(dataset_id),
            "identity_type": identity_type,
            "basis": claim.basis.value,
            "erasure_request_id": str(found.request_id),
        }
        if claim.note:
            data["note"] = claim.note
        append_event(
            session,
            actor=actor,
            action="suppression.lifted",
            entity_type="suppression",
            entity_id=str(found.suppression_id),
            data=data,
        )
    return lifted


def list_suppressions(
    session: Session, *, identity_type: str | None, cursor: str | None, limit: int
) -> tuple[list[Suppression], dict[uuid.UUID, list[SuppressionOverride]], str | None]:
    """A page of the list, newest first, with each entry's lawful-basis overrides."""
    query = select(Suppression)
    if identity_type is not None:
        query = query.where(Suppression.type == identity_type)
    rows, next_cursor = newest_first(
        session,
        query,
        at=Suppression.suppressed_at,
        id_=Suppression.id,
        cursor=cursor,
        limit=limit,
    )
    overrides: dict[uuid.UUID, list[SuppressionOverride]] = {r.id: [] for r in rows}
    if rows:
        for override in session.scalars(
            select(SuppressionOverride)
            .where(SuppressionOverride.suppression_id.in_(list(overrides)))
            .order_by(SuppressionOverride.granted_at)
        ):
            overrides[override.suppression_id].append(override)
    return rows, overrides, next_cursor


def counts_by_type(session: Session) -> dict[str, int]:
    rows = session.execute(select(Suppression.type, func.count()).group_by(Suppression.type))
    return {type_: count for type_, count in rows}
