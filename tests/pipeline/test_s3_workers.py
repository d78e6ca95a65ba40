"""Two workers that share nothing but Postgres, Redis and an S3 bucket: each keeps its own cache,
neither sees an artifact directory. A SISA model is trained, a person is erased with the shard
retrains spread over both workers, and afterwards no object version in the bucket and no file in
either cache holds any of the person's records; the certificate counts the versions deleted.

The suite's shared worker, if an earlier test started it, is stopped while this test runs (it
reads the local artifact directory) and started again afterwards.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from app.lineage.models import TrainingRecord
from tests.conftest import _RUN_ID, _VAR_DIR, REPO_ROOT, SESSION_WORKERS, wait_for
from tests.pipeline.helpers import (
    certificate_claims,
    create_model,
    erase,
    people,
    register_digits,
    train,
    wait_request,
)
from tests.s3_server import (
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    client,
    s3_server,
    versioned_bucket,
)
from workers.engine.checkpoints import SliceManifest
from workers.store.s3 import S3ArtifactStore, sha256_hex

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BUCKET = "lethe-e2e"
PREFIX = "lethe"


@dataclass
class Worker:
    name: str
    cache_dir: Path
    log_path: Path
    process: object = None

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


def _start(worker: Worker, env: dict[str, str], *, beat: bool) -> None:
    from app.core.processes import start_child

    command = [
        *(sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker"),
        *("-Q", "cpu,gpu", "--pool", "solo", "--loglevel", "INFO", "-n", f"{worker.name}@%h"),
        *("--without-mingle", "--without-gossip", "--without-heartbeat"),
    ]
    if beat:
        command += ["--beat", "--schedule", str(_VAR_DIR / f"{worker.name}-beat")]
    worker_env = env | {
        "LETHE_ARTIFACT_CACHE_DIR": str(worker.cache_dir),
        # A directory of its own that must stay empty: the bucket is the only shared store.
        "LETHE_ARTIFACT_DIR": str(worker.cache_dir.parent / f"{worker.name}-unused-artifacts"),
    }
    with worker.log_path.open("ab") as log:
        worker.process = start_child(command, cwd=REPO_ROOT, env=worker_env, stdout=log, stderr=log)


def _ready(worker: Worker) -> bool:
    text = worker.log()
    assert worker.process.poll() is None, text[-3000:]  # type: ignore[attr-defined]
    return "ready." in text


@pytest.fixture(scope="module")
def s3_workers(database: str) -> Iterator[tuple[S3ArtifactStore, list[Worker]]]:
    from app.core.processes import stop_child

    paused = [w for w in SESSION_WORKERS if w.process is not None and w.process.poll() is None]
    for session_worker in paused:
        session_worker.stop()
    root = _VAR_DIR / f"s3-workers-{_RUN_ID}"
    workers = [
        Worker(
            name=f"s3-{_RUN_ID}-{name}",
            cache_dir=root / f"{name}-cache",
            log_path=root / f"{name}.log",
        )
        for name in ("cpu", "gpu")
    ]
    root.mkdir(parents=True, exist_ok=True)
    try:
        with s3_server() as endpoint:
            versioned_bucket(endpoint, BUCKET)
            env = os.environ | {
                "LETHE_ARTIFACT_URL": f"s3://{BUCKET}/{PREFIX}",
                "LETHE_S3_ENDPOINT_URL": endpoint,
                "LETHE_S3_REGION": REGION,
                "LETHE_S3_ACCESS_KEY_ID": ACCESS_KEY_ID,
                "LETHE_S3_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
                "LETHE_BATCHING_WINDOW_SECONDS": "0",
                # No crash recovery here: a lease that outlasts a slow step on a busy machine,
                # so that no job runs twice.
                "LETHE_JOB_LEASE_SECONDS": "60",
                "LETHE_TORCH_THREADS": "1",
            }
            for index, worker in enumerate(workers):
                _start(worker, env, beat=index == 0)
            wait_for(lambda: all(_ready(w) for w in workers), timeout=120, every=0.5)
            store = S3ArtifactStore(
                client=client(endpoint), bucket=BUCKET, prefix=PREFIX, multipart_threshold=2**26
            )
            yield store, workers
    finally:
        for worker in workers:
            if worker.process is not None:
                stop_child(worker.process, grace=10)  # type: ignore[arg-type]
        for session_worker in paused:
            session_worker.start()


@pytest.fixture(scope="module")
def ml_headers(make_key) -> dict[str, str]:
    key = make_key(["lineage:write", "models:write", "requests:write", "requests:read"])
    return {"Authorization": f"Bearer {key}"}


def _version_bytes(store: S3ArtifactStore, key: str, version_id: str) -> bytes:
    response = store.client.get_object(
        Bucket=store.bucket, Key=f"{store.prefix}{key}", VersionId=version_id
    )
    return bytes(response["Body"].read())


def _holds(data: bytes, key: str, erased: set[int], clean_digests: set[str]) -> bool:
    """Whether the blob stored under `key` holds an erased record: a manifest or record list
    by its ids; a checkpoint's weights by being one whose manifest is clean and current (its
    bytes equal a current object's bytes that are clean)."""
    if key.endswith(".json") and "/manifests/" in key:
        return bool(set(SliceManifest.from_json(data).record_ids.tolist()) & erased)
    if key.endswith(".npy"):
        ids = np.load(io.BytesIO(data), allow_pickle=False)
        return bool(set(ids.tolist()) & erased)
    return sha256_hex(data) not in clean_digests


def _current_clean_digests(store: S3ArtifactStore, erased: set[int]) -> set[str]:
    """The SHA-256 of every current object that is clean: manifests and record lists by their
    ids, a checkpoint's weights by its manifest being current and clean."""
    clean_manifests = set()
    digests: dict[str, str] = {}
    for key in store.list():
        data = store.get(key=key)
        digests[key] = sha256_hex(data)
        if key.endswith(".json") and "/sisa/manifests/" in key:
            manifest = SliceManifest.from_json(data)
            if not set(manifest.record_ids.tolist()) & erased:
                clean_manifests.add(manifest.key)
    clean = set()
    for key, digest in digests.items():
        name = key.rsplit("/", 1)[-1].split(".")[0]
        if "/sisa/checkpoints/" in key and name not in clean_manifests:
            continue
        if "/sisa/manifests/" in key and name not in clean_manifests:
            continue
        clean.add(digest)
    return clean


def _cached_blobs(worker: Worker) -> dict[str, bytes]:
    blobs = worker.cache_dir / "blobs"
    return {p.name: p.read_bytes() for p in blobs.iterdir()} if blobs.exists() else {}


def _cached_manifests_holding(worker: Worker, erased: set[int]) -> int:
    count = 0
    for data in _cached_blobs(worker).values():
        try:
            record_ids = json.loads(data).get("record_ids", [])
        except (UnicodeDecodeError, ValueError, AttributeError):
            continue
        count += bool(set(record_ids) & erased)
    return count


def test_two_workers_share_only_the_bucket_and_keep_no_erased_copy(
    api, ml_headers, session, s3_workers
):
    store, workers = s3_workers
    reg = register_digits(api, ml_headers, limit=240)
    model = create_model(
        api, ml_headers, reg.dataset_id, strategy="sisa", shards=4, slices=1, epochs=2
    )
    train(api, ml_headers, model["id"])
    [person] = people(reg, 1)
    erased_keys = [
        f"{split}-{int(r)}"
        for split, arrays in reg.splits.items()
        for r, s in zip(arrays.record_ids, arrays.subject_ids, strict=True)
        if s == person
    ]
    erased = set(
        session.scalars(
            select(TrainingRecord.id).where(
                TrainingRecord.dataset_id == reg.dataset_id, TrainingRecord.key.in_(erased_keys)
            )
        )
    )
    session.rollback()
    assert erased
    # The workers cache what they wrote: before the erasure, erased records are in a cache.
    assert sum(_cached_manifests_holding(w, erased) for w in workers) >= 1
    tainted_versions = len(store.list_versions(prefix=f"models/{model['id']}/"))

    started = time.monotonic()
    request_id = erase(api, ml_headers, reg, person)
    final = wait_request(api, ml_headers, request_id, timeout=120)
    assert final["status"] == "completed", final
    [job] = final["jobs"]
    erasure_seconds = time.monotonic() - started

    # Both workers retrained shards of this erasure.
    for worker in workers:
        lines = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
        shards = [
            e["shard"]
            for e in lines
            if e.get("event") == "shard_retrain_started" and e.get("job_id") == job["id"]
        ]
        assert shards, f"{worker.name} ran no shard of the erasure"

    # No object version in the bucket holds an erased record, hidden versions included.
    clean = _current_clean_digests(store, erased)
    versions = store.list_versions()
    assert versions and not any(v.is_delete_marker for v in versions)
    for version in versions:
        data = _version_bytes(store, version.key, version.version_id)
        assert not _holds(data, version.key, erased, clean), version.key

    # No file in either cache holds one: each cached blob is the bytes of a clean current
    # object (the other worker's copies go by the broadcast eviction).
    def caches_clean() -> bool:
        return all(
            digest in clean and sha256_hex(data) == digest
            for worker in workers
            for digest, data in _cached_blobs(worker).items()
        )

    wait_for(caches_clean, timeout=30, every=0.5)
    assert all(_cached_manifests_holding(w, erased) == 0 for w in workers)
    for worker in workers:
        unused = worker.cache_dir.parent / f"{worker.name}-unused-artifacts"
        assert not unused.exists() or not any(p.is_file() for p in unused.rglob("*"))

    claims = certificate_claims(api, ml_headers, request_id)
    [model_claims] = claims["models"]
    deleted = model_claims["purge"]["object_versions"]
    assert list(deleted) == [f"s3://{BUCKET}/{PREFIX}"]
    assert 2 <= deleted[f"s3://{BUCKET}/{PREFIX}"] <= tainted_versions
    assert model_claims["purge"]["checkpoints"] >= 1
    print(f"erasure over two workers: {erasure_seconds:.1f} s")
