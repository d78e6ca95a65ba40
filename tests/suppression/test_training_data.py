"""Belt and braces: records of a suppressed person that reached the database another way are
never read for training, unless the dataset's client stated a lawful basis; a new erasure of
the person takes that basis back. SQLite, in-process."""

from __future__ import annotations

import uuid

import numpy as np

from app.lineage.bulk import RecordRow, insert_records
from app.lineage.service import create_dataset
from app.suppression import service as suppression
from app.suppression.enums import LawfulBasis
from app.suppression.service import BasisClaim
from workers.pipeline.records import load_records

ERASED = ("email", "e" * 64)
KEPT = ("email", "k" * 64)


def _row(key: str, identity: tuple[str, str], split: str = "train") -> RecordRow:
    features = np.array([1.0, 2.0], dtype="<f4").tobytes()
    return RecordRow(key=key, identities=(identity,), features=features, label=0, split=split)


def _keys(session, dataset_id: uuid.UUID, split: str = "train") -> list[int]:
    return load_records(session, dataset_id=dataset_id, split=split, input_shape=(2,)).record_ids


def test_suppressed_records_are_left_out_until_a_lawful_basis(sqlite_session, api_client):
    dataset = create_dataset(sqlite_session, client=api_client, name="d", description=None)
    rows = [_row("erased-1", ERASED), _row("erased-2", ERASED, "test"), _row("kept", KEPT)]
    insert_records(sqlite_session, dataset_id=dataset.id, rows=rows)  # not through `admit`
    before = _keys(sqlite_session, dataset.id)
    assert len(before) == 2

    request_id = uuid.uuid4()
    assert suppression.remember(sqlite_session, identities=[ERASED], request_id=request_id) == 1
    after = _keys(sqlite_session, dataset.id)
    assert len(after) == 1 and after[0] == max(before)  # only the kept person's record
    assert len(_keys(sqlite_session, dataset.id, "test")) == 0

    found = suppression.blocked(sqlite_session, client_id=api_client.id, identities=[ERASED, KEPT])
    assert list(found) == [ERASED] and found[ERASED].request_id == request_id
    claim = BasisClaim(basis=LawfulBasis.CONTRACT)
    lifted = suppression.lift(
        sqlite_session,
        client_id=api_client.id,
        grants={ERASED: (found[ERASED], claim)},
        dataset_id=dataset.id,
        actor=api_client.actor,
    )
    assert lifted == 1
    assert len(_keys(sqlite_session, dataset.id)) == 2

    # Erased again: every lawful basis for the person is dropped.
    suppression.remember(sqlite_session, identities=[ERASED], request_id=uuid.uuid4())
    assert len(_keys(sqlite_session, dataset.id)) == 1
    assert suppression.blocked(sqlite_session, client_id=api_client.id, identities=[ERASED])
