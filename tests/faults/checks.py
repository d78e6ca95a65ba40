"""The end state every fault case must reach, whatever was injected:

- the request completed, with a certificate that verifies against Lethe's published keys and
  whose counts are what is gone: the person's records, and per model the checkpoints and
  files that held them (counted on disk before the erasure);
- exactly one new version of the model, and it is the active one;
- the audit chain verifies, and the head the certificate anchors includes the deletions;
- nothing of the person left: no row in any table mentions them, and no file in the artifact
  store (a SISA manifest, a monolithic version's record list, or the checkpoint or weights
  they describe) holds one of their records.
"""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from app.core.config import get_settings
from tests.faults.harness import Case, Db


def _store() -> Path:
    return get_settings().resolved_artifact_dir


def _listed_ids(path: Path) -> np.ndarray | None:
    """The record ids a manifest (JSON with `record_ids`) or a record list (.npy) names."""
    if path.suffix == ".json":
        try:
            document = json.loads(path.read_bytes())
        except ValueError:
            return None
        if isinstance(document, dict) and isinstance(document.get("record_ids"), list):
            return np.asarray(document["record_ids"], dtype=np.int64)
        return None
    if path.suffix == ".npy":
        return np.asarray(np.load(io.BytesIO(path.read_bytes()), allow_pickle=False))
    return None


def _described(path: Path) -> list[Path]:
    """A manifest or record list, and the weights it describes."""
    parts = path.parts
    if path.suffix == ".json" and parts[-2] == "manifests" and parts[-3] == "sisa":
        return [path, path.parent.parent / "checkpoints" / f"{path.stem}.pt"]
    if path.suffix == ".npy" and parts[-2] == "records":
        return [path, path.parent.parent / "weights" / f"{path.stem}.pt"]
    return [path]


def files_holding(record_ids: set[int], *, model_id: uuid.UUID | None = None) -> set[str]:
    """Every file in the artifact store (or one model's part of it) that holds any of the
    records: each manifest or record list that names one, and the checkpoint or weights it
    describes. Paths relative to the store."""
    root = _store()
    base = root / "models" / str(model_id) if model_id else root
    erased = np.fromiter(record_ids, dtype=np.int64)
    found: set[str] = set()
    for path in sorted(base.rglob("*")):
        if not path.is_file():
            continue
        listed = _listed_ids(path)
        if listed is not None and np.isin(erased, listed).any():
            found.update(p.relative_to(root).as_posix() for p in _described(path))
    return found


def rows_mentioning(db: Db, needles: list[str]) -> dict[str, int]:
    """Rows of every table whose text (every column, JSON included) contains a needle."""
    tables = [
        t
        for (t,) in db.rows(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        )
    ]
    found: dict[str, int] = {}
    for table in tables:
        count = db.scalar(
            f'SELECT count(*) FROM "{table}" AS t, unnest(CAST(:n AS text[])) AS n '
            "WHERE strpos(t::text, n) > 0",
            n=needles,
        )
        if count:
            found[table] = int(count)
    return found


def assert_erased(
    api,
    headers: dict[str, str],
    db: Db,
    case: Case,
    request_id: uuid.UUID,
    *,
    tally: Any,
    timeout: float = 90,
    log: Path | None = None,
) -> dict[str, Any]:
    """Wait for the request to complete and check the end state; returns its certificate's
    claims."""
    from app.audit.service import verify_chain
    from app.core.db import get_sessionmaker
    from tests.faults.harness import wait_until

    def finished() -> str | None:
        status = db.request_status(request_id)
        return status if status in ("completed", "failed") else None

    try:
        status = wait_until(finished, timeout=timeout, what="the request to finish", every=0.1)
    except AssertionError:
        tail = log.read_text()[-4000:] if log and log.exists() else ""
        raise AssertionError(
            f"request {request_id} is {db.request_status(request_id)}; worker log:\n{tail}"
        ) from None
    tally.requests += 1
    tally.completed += status == "completed"
    # The figures first (a failed check below still counts what it found), then the checks.
    root = _store()
    left_files = files_holding(case.record_ids) | {
        f for f in case.tainted_files if (root / f).exists()
    }
    left_rows = rows_mentioning(db, [str(case.subject_id), case.identity])
    tally.leftovers += len(left_files) + sum(left_rows.values())
    new_versions = db.scalar(
        "SELECT count(*) FROM model_versions WHERE model_id = :m AND number > :n",
        m=case.model_id,
        n=max(case.versions_before),
    )
    tally.duplicate_versions += max(0, new_versions - 1)
    assert status == "completed", db.one(
        "SELECT status_reason FROM erasure_requests WHERE id = :r", r=request_id
    )

    # The certificate verifies offline against the published keys, and says what is gone.
    from app.audit.signing import verify_token

    response = api.get(f"/v1/erasure-requests/{request_id}/certificate", headers=headers)
    assert response.status_code == 200, response.text
    certificate = response.json()
    jwks = api.get("/v1/.well-known/jwks.json").json()
    _, claims = verify_token(certificate["jws"], jwks)
    assert claims == certificate["claims"]
    erased = len(case.record_ids)
    assert claims["records_erased"] == erased
    assert claims["data_purge"]["records_deleted"] == erased
    assert claims["data_purge"]["subjects_deleted"] == 1
    assert claims["data_purge"]["storage_scrubbed"] is True
    [model] = claims["models"]
    assert model["model_id"] == str(case.model_id)
    assert model["exact"] is True
    assert model["purge"] == case.expected_purge, (model["purge"], sorted(case.tainted_files))

    # Exactly one new version, active; the one before it purged with its files.
    versions = {
        int(v.number): str(v.status)
        for v in db.rows(
            "SELECT number, status FROM model_versions WHERE model_id = :m", m=case.model_id
        )
    }
    new = max(case.versions_before) + 1
    assert set(versions) == set(case.versions_before) | {new}, versions
    assert [n for n, s in versions.items() if s == "active"] == [new], versions
    assert model["new_version"]["number"] == new
    assert versions[max(case.versions_before)] == "purged", versions
    job_id = uuid.UUID(model["job_id"])
    items = db.rows(
        "SELECT kind, confirmed_at FROM purge_items WHERE job_id = :j OR request_id = :r",
        j=job_id,
        r=request_id,
    )
    assert items and all(i.confirmed_at is not None for i in items), items

    # The audit chain verifies, and the certificate's head includes the deletions it certifies.
    with get_sessionmaker()() as session:
        chain = verify_chain(session)
    assert chain.ok, chain
    head = claims["audit_chain_head"]
    assert db.scalar("SELECT hash FROM audit_events WHERE seq = :s", s=head["seq"]) == head["hash"]
    deletions = db.rows(
        "SELECT action FROM audit_events WHERE seq <= :s AND ("
        "(action = 'model.artifacts_deleted' AND entity_id = :m) OR "
        "(action = 'erasure_request.storage_scrubbed' AND entity_id = :r))",
        s=head["seq"],
        m=str(case.model_id),
        r=str(request_id),
    )
    assert {d.action for d in deletions} == {
        "model.artifacts_deleted",
        "erasure_request.storage_scrubbed",
    }

    # Nothing of the person left in the database...
    assert not db.scalar(
        "SELECT count(*) FROM training_records WHERE id = ANY(:ids) OR subject_id = :s",
        ids=sorted(case.record_ids),
        s=case.subject_id,
    )
    assert not db.scalar("SELECT count(*) FROM data_subjects WHERE id = :s", s=case.subject_id)
    assert left_rows == {}
    # ... nor in the artifact store: no file lists their records, no file that did is left.
    assert left_files == set()
    return claims
