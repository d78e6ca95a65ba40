"""SISA through the service at growing sizes, and with one worker against two.

Scale (default): for each `--records` size, import synthetic purchase records, train a SISA
model through the API and one Celery worker, then erase one person with a fresh worker; reports
train and erasure times and each task's peak resident memory in its worker process (the
kernel's high-water mark, reset as the task starts).

Workers (`--compare-workers`): train once, then erase `--people` people in one request (their
records spread over many shards) with one fresh worker, then as many others with two; reports
shard tasks per second for each. Every worker runs the solo pool with one torch thread.

    python bench/sisa_scale.py --records 24000 240000 [--epochs 2] [--json]
    python bench/sisa_scale.py --compare-workers --records 24000 --people 12
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.core.broker import EVALUATE_VERSION, FINISH_JOB, RUN_JOB, RUN_SHARD
from bench._machine import machine
from bench._service_run import Service, idle_rss_mb, import_dataset, read_tasks, service_run
from bench._support import wait_until
from workers.engine.data import synthetic_purchase

TASK_NAMES = {
    RUN_JOB: "run_job",
    RUN_SHARD: "run_shard",
    FINISH_JOB: "finish",
    EVALUATE_VERSION: "evaluate",
}


def _train(service: Service, args: argparse.Namespace, *, records: int) -> tuple[Any, str, float]:
    """Import, create and train the model with one worker; (data, model id, train seconds)."""
    data = synthetic_purchase(records=records, seed=args.seed)
    dataset_id = import_dataset(service, data=data, name=f"purchase-{records}")
    model = service.api.post(
        "/v1/models",
        json={
            "name": f"sisa-{records}",
            "dataset_id": dataset_id,
            "architecture": "mlp",
            "strategy": "sisa",
            "shards": args.shards,
            "slices": args.slices,
            "epochs": args.epochs,
        },
    ).json()
    started = time.perf_counter()
    job = service.api.post(f"/v1/models/{model['id']}/train").json()
    final = service.wait_job(job["id"])
    if final["status"] != "succeeded":
        raise RuntimeError(f"training failed: {final}")
    return data, str(model["id"]), time.perf_counter() - started


def _people(data: Any, *, count: int, skip: int, seed: int) -> list[str]:
    subjects = np.unique(data.train.subject_ids)
    chosen = np.random.default_rng(seed).permutation(subjects)[skip : skip + count]
    return [f"p-{int(s)}" for s in chosen]


def _task_summary(tasks: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for name, label in TASK_NAMES.items():
        runs = [t for t in tasks if t["task"] == name]
        if runs:
            summary[label] = {
                "count": len(runs),
                "median_s": round(statistics.median(t["seconds"] for t in runs), 3),
                "max_peak_rss_mb": round(max(t["peak_rss_mb"] for t in runs), 1),
            }
    return summary


def _settle(logs: list[Path], *, last: str) -> list[dict[str, Any]]:
    """The tasks once the `last` one has been logged (an erasure's is the new version's
    evaluation, which runs after the request completes)."""
    wait_until(lambda: any(t["task"] == last for t in read_tasks(logs)), timeout=600)
    return read_tasks(logs)


def scale(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for records in args.records:
        with tempfile.TemporaryDirectory() as var, service_run(Path(var)) as service:
            train_logs = service.start_workers(1, label=f"train{records}")
            data, _, train_s = _train(service, args, records=records)
            train_tasks = _settle(train_logs, last=RUN_JOB)
            service.stop_workers()
            erase_logs = service.start_workers(1, label=f"erase{records}")
            erase_s, request = service.erase(_people(data, count=1, skip=0, seed=args.seed))
            erase_tasks = _settle(erase_logs, last=EVALUATE_VERSION)
            rows.append(
                {
                    "records": records,
                    "train_records": len(data.train),
                    "train_s": round(train_s, 1),
                    "train_tasks": _task_summary(train_tasks),
                    "erasure_s": round(erase_s, 2),
                    "erased_records": request["plan"]["records_found"]
                    if request.get("plan")
                    else None,
                    "erasure_tasks": _task_summary(erase_tasks),
                    "idle_worker_rss_mb": idle_rss_mb(erase_logs),
                }
            )
    return rows


def _shard_rate(tasks: list[dict[str, Any]]) -> dict[str, Any]:
    shards = [t for t in tasks if t["task"] == RUN_SHARD]
    span = max(t["start"] + t["seconds"] for t in shards) - min(t["start"] for t in shards)
    return {
        "shard_tasks": len(shards),
        "shard_span_s": round(span, 2),
        "shard_tasks_per_s": round(len(shards) / span, 3),
        "median_shard_task_s": round(statistics.median(t["seconds"] for t in shards), 3),
        "workers_that_ran_shards": len({t["pid"] for t in shards}),
    }


def compare_workers(args: argparse.Namespace) -> dict[str, Any]:
    records = args.records[0]
    with tempfile.TemporaryDirectory() as var, service_run(Path(var)) as service:
        train_logs = service.start_workers(1, label="train")
        data, _, train_s = _train(service, args, records=records)
        _settle(train_logs, last=RUN_JOB)
        service.stop_workers()
        result: dict[str, Any] = {"records": records, "train_s": round(train_s, 1)}
        for round_, workers in enumerate((1, 2)):
            logs = service.start_workers(workers, label=f"w{workers}")
            people = _people(data, count=args.people, skip=round_ * args.people, seed=args.seed)
            erase_s, request = service.erase(people)
            tasks = _settle(logs, last=EVALUATE_VERSION)
            service.stop_workers()
            result[f"{workers}_worker"] = {
                "erasure_s": round(erase_s, 2),
                "erased_records": request["plan"]["records_found"],
                **_shard_rate(tasks),
            }
        one, two = result["1_worker"], result["2_worker"]
        result["two_to_one_shard_rate"] = round(
            two["shard_tasks_per_s"] / one["shard_tasks_per_s"], 2
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, nargs="+", default=[24_000, 240_000])
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--slices", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--people", type=int, default=12)
    parser.add_argument("--compare-workers", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report: dict[str, Any] = {
        "machine": machine(),
        "command": "python bench/sisa_scale.py " + " ".join(sys.argv[1:]),
        "settings": {"shards": args.shards, "slices": args.slices, "epochs": args.epochs},
    }
    if args.compare_workers:
        report["workers"] = compare_workers(args)
    else:
        report["sizes"] = scale(args)
    if args.json:
        print(json.dumps(report))
        return
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
