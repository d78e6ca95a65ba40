"""The purge outbox survives failures: an item that cannot be deleted stays pending with its
reason, the request waiting on it stays `verifying` without a certificate, and the next sweep
deletes it and completes the request."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select

from app.core.config import get_settings
from app.core.db import utcnow
from app.erasure.enums import RequestStatus
from app.erasure.models import ErasureRequest
from app.erasure.progress import after_purge
from app.registry import purge
from app.registry.enums import PurgeKind
from app.registry.models import PurgeItem
from workers.pipeline.sweeper import sweep


def _verifying_request(session, client_id: uuid.UUID) -> ErasureRequest:
    now = utcnow()
    request = ErasureRequest(
        client_id=client_id,
        status=RequestStatus.PLANNED,
        identities=[{"type": "email", "hash": "2" * 64}],
        received_at=now,
        due_at=now + timedelta(days=30),
        updated_at=now,
        plan={"subject_ids": [], "models_affected": []},
        data_purged_at=now,
    )
    session.add(request)
    session.flush()
    return request


def test_an_item_that_cannot_be_deleted_is_retried_until_gone(session, make_key):
    from app.core.auth import create_client

    client = create_client(session, name="purge-test", scopes=["admin"]).client
    request = _verifying_request(session, client.id)
    key = f"models/{uuid.uuid4()}/weights/{uuid.uuid4()}.pt"
    blocker = get_settings().resolved_artifact_dir.joinpath(*key.split("/"))
    blocker.mkdir(parents=True)  # a directory where the file is: unlink fails for real
    (blocker / "inside").write_bytes(b"x")
    item = purge.record(session, kind=PurgeKind.ARTIFACT, key=key, request_id=request.id)
    session.commit()

    sweep()  # the worker's beat may sweep too: both fail the same way
    session.expire_all()
    stored = session.get(PurgeItem, item.id)
    assert stored is not None and stored.confirmed_at is None
    assert stored.attempts >= 1 and stored.last_error and "Error" in stored.last_error
    after_purge(session, job_ids=set(), request_ids={request.id})
    session.commit()
    assert session.get(ErasureRequest, request.id).status == RequestStatus.PLANNED

    (blocker / "inside").unlink()
    blocker.rmdir()
    blocker.write_bytes(b"weights that held erased records")
    sweep()
    after_purge(session, job_ids=set(), request_ids={request.id})
    session.commit()
    session.expire_all()
    assert not blocker.exists()
    stored = session.get(PurgeItem, item.id)
    assert stored is not None and stored.confirmed_at is not None and stored.attempts >= 2
    done = session.get(ErasureRequest, request.id)
    assert done.status == RequestStatus.COMPLETED
    assert (
        session.scalar(
            select(PurgeItem.id).where(
                PurgeItem.request_id == request.id, PurgeItem.confirmed_at.is_(None)
            )
        )
        is None
    )


def test_files_no_live_row_owns_are_found_and_deleted(api, make_key, celery_worker):
    """A checkpoint and a weights file left behind (a crash between writing and recording, or a
    deletion lost) are deleted by the scan, audited; live files stay."""
    from app.core.db import get_sessionmaker
    from tests.pipeline.helpers import create_model, register_digits, train
    from workers.pipeline.orphans import scan_orphans

    headers = {"Authorization": f"Bearer {make_key(['lineage:write', 'models:write'])}"}
    reg = register_digits(api, headers, limit=200)
    model = create_model(api, headers, reg.dataset_id, shards=2, slices=1, epochs=1)
    train(api, headers, model["id"])
    root = get_settings().resolved_artifact_dir / "models" / model["id"]
    live = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    stray_state = root / "sisa" / "checkpoints" / "stray.pt"
    stray_weights = root / "weights" / f"{uuid.uuid4()}.pt"
    for stray in (stray_state, stray_weights):
        stray.parent.mkdir(parents=True, exist_ok=True)
        stray.write_bytes(b"left behind")

    counts = scan_orphans()
    assert counts["checkpoints"] >= 1 and counts["artifacts"] >= 1
    assert not stray_state.exists() and not stray_weights.exists()
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == live
    with get_sessionmaker()() as session:
        from app.audit.models import AuditEvent

        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.entity_id == model["id"])
        ).all()
    assert "model.orphans_deleted" in actions
