"""The purge sweeper: deletes every item of the purge outbox and confirms it is gone, retrying
on the next sweep until it is; then the requests waiting on those items move on (they complete
and get their certificate in a later transaction, so the chain head a certificate anchors
includes the deletions it certifies).

A checkpoint of a discarded held version waits while a job of its model runs, and is kept (not
deleted) once a live version owns it again: checkpoints are keyed by their content, so training on
the same records again produces the same one.

Deleting a file removes every stored version of it (in a bucket, every object version and delete
marker) and is confirmed by listing the versions left, of which there must be none. Other
workers' cached copies of what was deleted are evicted by a broadcast, and by their periodic
cache sweep should the broadcast not reach them; none would be used meanwhile, since a cached
copy is checked against the bucket before each use.

The database item is a storage scrub after erased rows were deleted: on SQLite (which runs with
`secure_delete`, so freed pages are zeroed) a WAL checkpoint that truncates the log; on Postgres
a `VACUUM` of the tables that held them.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field

import structlog
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.audit.service import SYSTEM_ACTOR, append_event
from app.core.db import get_engine
from app.jobs import service as jobs_service
from app.registry import purge, versions
from app.registry.enums import PurgeKind
from app.registry.models import PurgeItem
from workers.engine.artifacts import ArtifactStore
from workers.engine.verification.manifests import reference_files
from workers.pipeline.cache_eviction import evict_cached_copies
from workers.pipeline.session import db_session
from workers.pipeline.storage import artifact_store, checkpoint_store

log = structlog.get_logger(__name__)
SCRUBBED_TABLES = ("training_records", "subject_identities", "data_subjects")
CHECKPOINT_WAIT_MS = 2000


@dataclass
class SweepResult:
    confirmed: int = 0
    failed: int = 0
    job_ids: set[uuid.UUID] = field(default_factory=set)
    request_ids: set[uuid.UUID] = field(default_factory=set)
    purged_keys: list[str] = field(default_factory=list)


def _files(item: PurgeItem) -> list[str]:
    """The blobs of a file item. A reference model is its manifest and its weights, deleted in
    that order so that a half-deleted one is never taken for a complete one."""
    if item.kind == PurgeKind.CHECKPOINT:
        assert item.model_id is not None
        return checkpoint_store(model_id=item.model_id).files(key=item.key)
    if item.kind == PurgeKind.REFERENCE:
        return reference_files(manifest_key=item.key)
    return [item.key]


def _purge(keys: list[str]) -> int:
    """Delete every stored version of the blobs (in a bucket: every object version and delete
    marker) and confirm that none remains; returns how many versions were removed."""
    store = artifact_store()
    removed = sum(store.purge(key=key) for key in keys)
    left = [key for key in keys for v in store.list_versions(prefix=key) if v.key == key]
    if left:
        raise RuntimeError(f"{len(left)} stored version(s) still present after deletion")
    return removed


def _discarded(item: PurgeItem) -> bool:
    """An item of a discarded held version (no erasure waits on it). Checkpoints are keyed by
    their content, so a later training run may produce, and reuse, the same one."""
    return item.job_id is None and item.request_id is None


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def scrub_database() -> None:
    """Make deleted rows unrecoverable from the database's own files, as far as it allows."""
    engine = get_engine()
    if engine.dialect.name != "sqlite":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"VACUUM {', '.join(SCRUBBED_TABLES)}"))
        return
    # Outside any transaction (the engine's connections begin one on first use). A truncating
    # checkpoint waits for readers while holding off writers: wait briefly, and let the next
    # sweep try again rather than stall the service.
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(f"PRAGMA busy_timeout={CHECKPOINT_WAIT_MS}")
        busy = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    finally:
        raw.close()
    if busy:
        raise RuntimeError("the write-ahead log is in use; checkpoint retried next sweep")


def _count_before_deleting(items: list[PurgeItem], *, store: ArtifactStore) -> None:
    """Record how many stored versions each item's files have, before any is deleted (committed
    by the caller): a worker killed after deleting and before confirming would otherwise leave
    the certificate counting none, since the retry finds nothing left."""
    for item in items:
        keys = _files(item)
        found = sum(1 for key in keys for v in store.list_versions(prefix=key) if v.key == key)
        if found > (item.versions_deleted or 0):
            item.versions_deleted = found
            item.deleted_from = store.location


def _due_file_items(session: Session) -> tuple[list[PurgeItem], list[int]]:
    """The file items to delete in this pass, and the ids of the database items (scrubbed
    after). A checkpoint a live version owns again is confirmed kept instead."""
    running = jobs_service.models_running(session)
    live: dict[uuid.UUID, set[str]] = {}
    files: list[PurgeItem] = []
    scrubs: list[int] = []
    for item in purge.pending(session):
        if item.kind == PurgeKind.DATABASE:
            scrubs.append(item.id)
            continue
        if item.kind == PurgeKind.CHECKPOINT and item.model_id is not None:
            if _discarded(item) and item.model_id in running:
                continue  # a running job may be reusing it (same records, same key)
            if item.key in live.setdefault(
                item.model_id,
                set(versions.live_checkpoint_keys(session, model_id=item.model_id)),
            ):
                purge.confirm(item)  # a later version trained the same checkpoint: kept
                item.last_error = "kept: a live version owns this checkpoint again"
                continue
        files.append(item)
    return files, scrubs


def sweep() -> SweepResult:
    """One pass over the outbox. Items that fail stay for the next pass. Files go first (their
    versions counted and committed before any is deleted); the database scrub runs after,
    holding no transaction of ours."""
    result = SweepResult()
    with db_session() as session:
        deleted: Counter[tuple[str, str]] = Counter()
        versions_by_model: Counter[str] = Counter()
        store = artifact_store()
        files, scrubs = _due_file_items(session)
        try:
            _count_before_deleting(files, store=store)
        except Exception as exc:  # the store cannot be listed: nothing is deleted this pass
            log.warning("purge_count_failed", error_type=type(exc).__name__)
            files = []
        session.commit()
        for item in files:
            try:
                keys = _files(item)
                removed = _purge(keys)
            except Exception as exc:  # retried on the next sweep; the reason is kept
                purge.failed(item, error=_describe(exc))
                result.failed += 1
                log.warning("purge_item_failed", item_id=item.id, kind=item.kind)
                continue
            versions_deleted = max(item.versions_deleted or 0, removed)
            purge.confirm(item, deleted_from=store.location, versions_deleted=versions_deleted)
            result.confirmed += 1
            result.purged_keys += keys
            deleted[(str(item.model_id), item.kind)] += 1
            versions_by_model[str(item.model_id)] += versions_deleted
            if item.job_id is not None:
                result.job_ids.add(item.job_id)
        for model_id in sorted({m for m, _ in deleted}):
            append_event(
                session,
                actor=SYSTEM_ACTOR,
                action="model.artifacts_deleted",
                entity_type="model",
                entity_id=model_id,
                data={
                    "checkpoints": deleted[(model_id, PurgeKind.CHECKPOINT)],
                    "artifacts": deleted[(model_id, PurgeKind.ARTIFACT)],
                    "references": deleted[(model_id, PurgeKind.REFERENCE)],
                    "object_versions": versions_by_model[model_id],
                },
            )
        session.commit()
    if result.purged_keys:
        evict_cached_copies(keys=result.purged_keys)
    if scrubs:
        _scrub(scrubs, result)
    if result.confirmed or result.failed:
        log.info("purge_sweep", confirmed=result.confirmed, failed=result.failed)
    return result


def _scrub(item_ids: list[int], result: SweepResult) -> None:
    error = None
    try:
        scrub_database()
    except Exception as exc:  # e.g. the log is busy: the next sweep tries again
        error = _describe(exc)
        log.warning("storage_scrub_failed", error_type=type(exc).__name__)
    with db_session() as session:
        for item_id in item_ids:
            item = session.get(PurgeItem, item_id)
            if item is None or item.confirmed_at is not None:
                continue
            if error is not None:
                purge.failed(item, error=error)
                result.failed += 1
                continue
            purge.confirm(item)
            result.confirmed += 1
            if item.request_id is not None:
                result.request_ids.add(item.request_id)
                append_event(
                    session,
                    actor=SYSTEM_ACTOR,
                    action="erasure_request.storage_scrubbed",
                    entity_type="erasure_request",
                    entity_id=str(item.request_id),
                    data={},
                )
        session.commit()
