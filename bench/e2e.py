"""End-to-end erasure time against the bare engine, in the same run.

For each of `--people` people it snapshots the model's checkpoints, submits an erasure request
over HTTP and times it to `completed` (Postgres, Redis, one API process, one Celery worker), then
runs the engine's `unlearn` for the same records on the snapshot, in this process. The difference
is what orchestration adds: planning, queueing, loading records, verification, the version
switch, the purge, the certificate and the audit trail.

    python bench/e2e.py --records 10000 --shards 16 --slices 8 --people 3 [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import machine
from bench._support import free_port, register_dataset, scratch_database, start_api

if TYPE_CHECKING:
    from sqlalchemy import Engine

ROOT = Path(__file__).resolve().parent.parent


T = TypeVar("T")


def _wait(predicate: Callable[[], T | None], timeout: float, every: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--slices", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--people", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as var, scratch_database("lethe_bench_e2e") as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LETHE_")} | {
            "LETHE_DATABASE_URL": url,
            "LETHE_BROKER_URL": "redis://127.0.0.1:6379/12",
            "LETHE_BROKER_KEY_PREFIX": f"lethe-bench-{uuid.uuid4().hex[:8]}:",
            "LETHE_IDENTITY_PEPPER": "bench-pepper",
            "LETHE_VAR_DIR": var,
            "LETHE_LOG_LEVEL": "WARNING",
        }
        os.environ.update(env)
        report = _run(args, env=env, var=Path(var), url=url)
    report |= {"machine": machine(), "command": "python bench/e2e.py " + " ".join(sys.argv[1:])}
    if args.json:
        print(json.dumps(report))
        return
    for key, value in report.items():
        print(f"{key}: {value}")


def _run(args: argparse.Namespace, *, env: dict[str, str], var: Path, url: str) -> dict[str, Any]:
    from sqlalchemy.orm import Session

    from app.core.auth import create_client
    from app.core.db import make_engine
    from app.core.migrate import upgrade
    from workers.engine.data import synthetic_purchase

    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        key = create_client(session, name="bench", scopes=["admin"]).key
        session.commit()
    port = free_port()
    processes = [
        start_api(port=port, env=env),
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "workers.celery_app",
                "worker",
                "-Q",
                "cpu,gpu",
                "--pool",
                "solo",
                "--loglevel",
                "WARNING",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=120,
        )
        _wait(lambda: _ok(api), timeout=60)
        data = synthetic_purchase(records=args.records, seed=args.seed)
        dataset = register_dataset(api, data=data, name="bench")
        body = {
            "name": "bench",
            "dataset_id": dataset["id"],
            "architecture": "mlp",
            "strategy": "sisa",
            "shards": args.shards,
            "slices": args.slices,
        }
        if args.epochs:
            body["epochs"] = args.epochs
        model = api.post("/v1/models", json=body).json()
        job = api.post(f"/v1/models/{model['id']}/train").json()
        _wait(
            lambda: api.get(f"/v1/jobs/{job['id']}").json()["status"] == "succeeded",
            timeout=3600,
            every=0.5,
        )

        subjects = np.unique(data.train.subject_ids)
        rng = np.random.default_rng(args.seed)
        chosen = rng.choice(subjects, size=args.people + 1, replace=False)
        _one(api, engine, model["id"], int(chosen[0]), var=var)  # warm-up, not reported
        runs = [_one(api, engine, model["id"], int(p), var=var) for p in chosen[1:]]
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
        engine.dispose()
    e2e = [r["e2e_s"] for r in runs]
    bare = [r["engine_s"] for r in runs]
    overhead = [a - b for a, b in zip(e2e, bare, strict=True)]
    budget = [1.0 + 0.1 * b for b in bare]
    return {
        "records": args.records,
        "shards": args.shards,
        "slices": args.slices,
        "runs": runs,
        "median_e2e_s": round(statistics.median(e2e), 3),
        "median_engine_s": round(statistics.median(bare), 3),
        "median_overhead_s": round(statistics.median(overhead), 3),
        "goal_met_every_run": all(o <= b for o, b in zip(overhead, budget, strict=True)),
    }


def _ok(api: httpx.Client) -> bool:
    try:
        return api.get("/readyz").status_code == 200
    except httpx.HTTPError:
        return False


def _one(
    api: httpx.Client, engine: Engine, model_id: str, person: int, *, var: Path
) -> dict[str, Any]:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from app.lineage.models import DataSubject, SubjectIdentity, TrainingRecord
    from app.registry.models import MlModel, ModelVersion
    from workers.engine.architectures import get_architecture
    from workers.engine.artifacts import LocalArtifactStore
    from workers.engine.checkpoints import CheckpointStore
    from workers.engine.sisa_model import SisaModel
    from workers.engine.unlearning import unlearn
    from workers.pipeline.records import load_records

    with Session(engine) as session:
        model = session.get(MlModel, uuid.UUID(model_id))
        version = session.get(ModelVersion, model.active_version_id) if model else None
        if model is None or version is None:
            raise RuntimeError(f"model {model_id} has no active version")
        manifest = version.manifest
        train = load_records(
            session,
            dataset_id=model.dataset_id,
            split="train",
            input_shape=manifest["input_shape"],
            max_record_id=manifest["max_record_id"],
        )
        erased = session.scalars(
            select(TrainingRecord.id)
            .join(SubjectIdentity, SubjectIdentity.subject_id == TrainingRecord.subject_id)
            .join(DataSubject, DataSubject.id == TrainingRecord.subject_id)
            .where(TrainingRecord.dataset_id == model.dataset_id, TrainingRecord.split == "train")
            .where(SubjectIdentity.hash.in_(_hashes(person)))
        ).all()
    snapshot = Path(tempfile.mkdtemp(dir=var))
    shutil.copytree(var / "artifacts" / "models" / model_id, snapshot / "models" / model_id)

    started = time.perf_counter()
    created = api.post(
        "/v1/erasure-requests", json={"identities": [{"type": "user_id", "value": f"p-{person}"}]}
    ).json()

    def finished() -> dict[str, Any] | None:
        body: dict[str, Any] = api.get(f"/v1/erasure-requests/{created['id']}").json()
        return body if body["status"] in ("completed", "failed") else None

    final = _wait(finished, timeout=3600)
    e2e = time.perf_counter() - started
    assert final["status"] == "completed", final
    events = api.get(f"/v1/erasure-requests/{created['id']}/events").json()
    received = datetime.fromisoformat(events[0]["occurred_at"])
    timeline = {
        e["action"].split(".", 1)[1]: round(
            (datetime.fromisoformat(e["occurred_at"]) - received).total_seconds(), 3
        )
        for e in events
    }

    sisa = SisaModel.from_dict(manifest)
    result = unlearn(
        model=sisa,
        spec=get_architecture(sisa.architecture).with_hyperparameters(
            epochs=sisa.hyperparameters["epochs"]
        ),
        data=train,
        erased_record_ids=erased,
        checkpoints=CheckpointStore(
            store=LocalArtifactStore(root=snapshot), prefix=f"models/{model_id}/sisa"
        ),
    )
    shutil.rmtree(snapshot)
    return {
        "erased_records": len(erased),
        "shards_retrained": len(result.retrained_shards),
        "e2e_s": round(e2e, 3),
        "engine_s": round(result.seconds, 3),
        "timeline_s": timeline,
    }


def _hashes(person: int) -> list[str]:
    from app.lineage.identity import IdentityFormat, IdentityType, identity_hash

    return [
        identity_hash(
            pepper=b"bench-pepper",
            identity_type=IdentityType.USER_ID,
            value=f"p-{person}",
            identity_format=IdentityFormat.RAW,
        )
    ]


if __name__ == "__main__":
    main()
