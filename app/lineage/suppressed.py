"""People erased on request, as lineage sees them (the list is `app.suppression`'s).

A record that names a suppressed identity is refused, whole call and nothing written, unless it
states a lawful basis; then the suppression is lifted for the dataset's client alone, audited.
Training never reads a record whose subject carries an identity suppressed for that client.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.orm import Session

from app.core.errors import ProblemError
from app.lineage.bulk import RecordRow, rows_by_hash
from app.lineage.models import Dataset, SubjectIdentity, TrainingRecord
from app.suppression import service as suppression
from app.suppression.models import Suppression
from app.suppression.service import BasisClaim, Blocked, Identity

REFUSED_DETAIL = "identity erased on request; send a lawful_basis with the record"


class SuppressedIdentities(ProblemError):
    """Records for people erased on request, without a lawful basis. `positions` holds
    (record, identity) indexes; neither the message nor the pointers carry an identity."""

    def __init__(self, positions: list[tuple[int, int]], *, pointer_prefix: str) -> None:
        records = len({i for i, _ in positions})
        super().__init__(
            409,
            f"{records} record(s) name a person erased on request; such a record is accepted "
            "only with a `lawful_basis` (GDPR Art. 6(1)) for processing it again",
            slug="identity-suppressed",
            title="Identity erased on request",
            errors=[
                {"pointer": f"{pointer_prefix}/{i}/identities/{j}", "detail": REFUSED_DETAIL}
                for i, j in positions[:100]
            ],
        )
        self.positions = positions


def admit(
    session: Session,
    *,
    dataset: Dataset,
    rows: Sequence[RecordRow],
    actor: str,
    pointer_prefix: str = "#/records",
) -> int:
    """Refuse the rows if one names a suppressed identity without a lawful basis; otherwise
    lift the suppressions that rows with a lawful basis name, for the dataset's client.
    Returns how many were lifted."""
    identities = [p for r in rows for p in r.identities]
    found = suppression.blocked(
        session, client_id=dataset.client_id, identities=_suppressed(session, identities)
    )
    if not found:
        return 0
    refused = [
        (i, j)
        for i, row in enumerate(rows)
        if row.lawful_basis is None
        for j, pair in enumerate(row.identities)
        if pair in found
    ]
    if refused:
        raise SuppressedIdentities(refused, pointer_prefix=pointer_prefix)
    grants: dict[Identity, tuple[Blocked, BasisClaim]] = {}
    for row in rows:
        for pair in row.identities:
            if pair in found and pair not in grants and row.lawful_basis is not None:
                grants[pair] = (found[pair], row.lawful_basis)
    return suppression.lift(
        session, client_id=dataset.client_id, grants=grants, dataset_id=dataset.id, actor=actor
    )


def _suppressed(session: Session, identities: list[Identity]) -> list[Identity]:
    """Those of `identities` suppressed for anyone: usually none, and then `blocked` (which also
    weighs each client's lawful bases) has nothing to look up."""
    rows = rows_by_hash(session, Suppression, ("type", "hash"), [h for _, h in identities])
    suppressed = {(type_, hash_) for type_, hash_ in rows}
    return [pair for pair in identities if pair in suppressed] if suppressed else []


def not_suppressed(*, dataset_id: uuid.UUID) -> ColumnElement[bool]:
    """A filter on the dataset's training records: no identity of the record's subject is
    suppressed without a lawful basis of the dataset's client."""
    owner = select(Dataset.client_id).where(Dataset.id == dataset_id).scalar_subquery()
    blocked = suppression.blocked_identities(client_id=owner).subquery()
    subjects = select(SubjectIdentity.subject_id).join(
        blocked,
        and_(SubjectIdentity.type == blocked.c.type, SubjectIdentity.hash == blocked.c.hash),
    )
    return TrainingRecord.subject_id.not_in(subjects)
