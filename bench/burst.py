"""A burst of erasure requests against one SISA model, on the embedded default and on Postgres
and Redis, in the same run.

Each setup is `lethe serve` (the API and one worker with beat), started the same way; only the
database and the broker differ: SQLite and the local queue under a scratch directory, or a
scratch Postgres database and Redis. The benchmark registers `--records` synthetic purchase
records of about `--records / 4` people, trains a SISA model (`--shards` x `--slices`), then
submits `--requests` erasure requests for different people from `--clients` concurrent clients
and times the burst from the first submission to the last request completed.

    python bench/burst.py --records 5000 --shards 8 --slices 4 --requests 100 [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import machine
from bench._support import register_dataset, scratch_database, serving, wait_until

FINAL = ("completed", "failed", "cancelled", "denied")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--slices", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--requests", type=int, default=100, help="at most 200")
    parser.add_argument("--clients", type=int, default=8, help="concurrent submitting clients")
    parser.add_argument("--only", choices=("embedded", "postgres"), default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    report: dict[str, Any] = {
        "records": args.records,
        "shards": args.shards,
        "slices": args.slices,
        "requests": args.requests,
    }
    if args.only in (None, "embedded"):
        with tempfile.TemporaryDirectory(prefix="lethe-burst-") as work:
            report["embedded"] = _run(args, env={}, workdir=Path(work))
    if args.only in (None, "postgres"):
        with (
            tempfile.TemporaryDirectory(prefix="lethe-burst-") as work,
            scratch_database("lethe_bench_burst") as url,
        ):
            env = {
                "LETHE_DATABASE_URL": url,
                "LETHE_BROKER_URL": "redis://127.0.0.1:6379/12",
                "LETHE_BROKER_KEY_PREFIX": f"lethe-bench-{uuid.uuid4().hex[:8]}:",
                "LETHE_IDENTITY_PEPPER": "bench-pepper",
            }
            report["postgres_redis"] = _run(args, env=env, workdir=Path(work))
    if "embedded" in report and "postgres_redis" in report:
        ratio = report["embedded"]["burst_s"] / report["postgres_redis"]["burst_s"]
        report["embedded_over_postgres_redis"] = round(ratio, 2)
    report |= {"machine": machine(), "command": "python bench/burst.py " + " ".join(sys.argv[1:])}
    if args.json:
        print(json.dumps(report))
        return
    for key, value in report.items():
        print(f"{key}: {value}")


def _run(args: argparse.Namespace, *, env: dict[str, str], workdir: Path) -> dict[str, Any]:
    from workers.engine.data import synthetic_purchase

    data = synthetic_purchase(records=args.records, seed=0)
    with serving(env, workdir) as (api, _log):
        dataset = register_dataset(api, data=data, name="burst")
        body: dict[str, Any] = {
            "name": "burst",
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
        trained = wait_until(
            lambda: (
                (j := api.get(f"/v1/jobs/{job['id']}").json())["status"] in ("succeeded", "failed")
                and j
            ),
            timeout=3600,
            every=0.5,
        )
        assert trained["status"] == "succeeded", trained

        people = np.unique(data.train.subject_ids)
        chosen = np.random.default_rng(1).choice(people, size=args.requests, replace=False)

        def submit(person: int) -> str:
            response = api.post(
                "/v1/erasure-requests",
                json={"identities": [{"type": "user_id", "value": f"p-{int(person)}"}]},
            )
            response.raise_for_status()
            return str(response.json()["id"])

        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            ids = list(pool.map(submit, chosen))
        submitted = time.perf_counter() - started
        wanted = set(ids)
        finals: dict[str, str] = {}

        def all_final() -> bool:
            # One list call per poll: polling each request would load the API more than the
            # burst itself, and on SQLite every transaction takes the write lock.
            page = api.get(f"/v1/erasure-requests?limit={min(len(ids), 200)}").json()["items"]
            finals.update({r["id"]: r["status"] for r in page if r["id"] in wanted})
            return all(finals.get(i) in FINAL for i in ids)

        wait_until(all_final, timeout=3600, every=0.5)
        burst = time.perf_counter() - started
        jobs = api.get(f"/v1/jobs?model_id={model['id']}&kind=unlearn&limit=200").json()["items"]
    statuses = {s: list(finals.values()).count(s) for s in sorted(set(finals.values()))}
    shard_seconds = [
        float(v) for j in jobs for v in (j["metrics"].get("shard_seconds") or {}).values() if v
    ]
    return {
        "burst_s": round(burst, 2),
        "submit_s": round(submitted, 2),
        "statuses": statuses,
        "unlearning_jobs": len(jobs),
        "shard_retrains": len(shard_seconds),
        "shard_compute_s": round(sum(shard_seconds), 2),
        "training_s": trained["metrics"].get("seconds") or trained["metrics"].get("train_seconds"),
    }


if __name__ == "__main__":
    main()
