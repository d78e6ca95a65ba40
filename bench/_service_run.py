"""A Lethe service for a benchmark run: a scratch database and broker prefix, the API under
uvicorn, and Celery workers started and stopped at will, each logging its tasks' durations and
peak memory (`bench._worker_probe`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench._support import free_port, scratch_database, start_api, wait_until

ROOT = Path(__file__).resolve().parent.parent
PEPPER = "bench-pepper"


@dataclass
class Service:
    env: dict[str, str]
    var: Path
    api: httpx.Client
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    task_logs: list[Path] = field(default_factory=list)

    def start_workers(self, count: int, *, label: str) -> list[Path]:
        """`count` solo-pool workers with one torch thread each; returns their task logs once
        every one is ready."""
        logs = []
        for n in range(count):
            log = self.var / f"tasks-{label}-{n}.jsonl"
            log.touch()
            self.workers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "celery",
                        "-A",
                        "bench._worker_probe",
                        "worker",
                        "-Q",
                        "cpu,gpu",
                        "--pool",
                        "solo",
                        "-n",
                        f"{label}-{n}@%h",
                        "--loglevel",
                        "WARNING",
                    ],
                    cwd=ROOT,
                    env=self.env | {"BENCH_TASK_LOG": str(log), "OMP_NUM_THREADS": "1"},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            logs.append(log)
        wait_until(lambda: all('"ready"' in log.read_text() for log in logs), timeout=180)
        self.task_logs += logs
        return logs

    def stop_workers(self) -> None:
        for process in self.workers:
            process.send_signal(signal.SIGTERM)
        for process in self.workers:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.workers = []

    def wait_job(self, job_id: str, *, timeout: float = 7200) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            body: dict[str, Any] = self.api.get(f"/v1/jobs/{job_id}").json()
            return body if body["status"] in ("succeeded", "failed") else None

        return wait_until(done, timeout=timeout, every=0.25)

    def erase(self, values: list[str], *, timeout: float = 7200) -> tuple[float, dict[str, Any]]:
        """Submit one erasure request naming these user ids; (seconds to completed, request)."""
        started = time.perf_counter()
        created = self.api.post(
            "/v1/erasure-requests",
            json={"identities": [{"type": "user_id", "value": v} for v in values]},
        ).json()

        def finished() -> dict[str, Any] | None:
            body: dict[str, Any] = self.api.get(f"/v1/erasure-requests/{created['id']}").json()
            return body if body["status"] in ("completed", "failed") else None

        final = wait_until(finished, timeout=timeout, every=0.1)
        seconds = time.perf_counter() - started
        if final["status"] != "completed":
            raise RuntimeError(f"the erasure request ended {final['status']}: {final}")
        return seconds, final


def read_tasks(logs: list[Path]) -> list[dict[str, Any]]:
    entries = [json.loads(line) for log in logs for line in log.read_text().splitlines()]
    return sorted((e for e in entries if e["event"] == "task"), key=lambda e: e["start"])


def idle_rss_mb(logs: list[Path]) -> list[float]:
    entries = [json.loads(line) for log in logs for line in log.read_text().splitlines()]
    return [round(e["rss_mb"], 1) for e in entries if e["event"] == "ready"]


def import_dataset(service: Service, *, data: Any, name: str) -> str:
    """The dataset's records through `lethe records import` (people as `user_id` p-<subject>);
    returns the dataset's id."""
    dataset: dict[str, Any] = service.api.post("/v1/datasets", json={"name": name}).json()
    parts = [(split, getattr(data, split)) for split in ("train", "holdout", "test")]
    path = service.var / f"{name}.npz"
    np.savez(
        path,
        keys=np.concatenate([np.char.add(f"{s}-", a.record_ids.astype(str)) for s, a in parts]),
        identity_types=np.full(sum(len(a) for _, a in parts), "user_id"),
        identity_values=np.concatenate(
            [np.char.add("p-", a.subject_ids.astype(str)) for _, a in parts]
        ),
        labels=np.concatenate([a.labels for _, a in parts]),
        splits=np.concatenate([np.full(len(a), s) for s, a in parts]),
        features=np.concatenate([a.features.reshape(len(a), -1) for _, a in parts]),
    )
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from app.cli import main; main()",
            "records",
            "import",
            dataset["id"],
            str(path),
        ],
        cwd=ROOT,
        env=service.env,
        capture_output=True,
        check=True,
    )
    path.unlink()
    return str(dataset["id"])


@contextmanager
def service_run(var: Path) -> Iterator[Service]:
    """The API on a scratch database, no workers yet."""
    with scratch_database("lethe_bench_scale") as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LETHE_")} | {
            "LETHE_DATABASE_URL": url,
            "LETHE_BROKER_URL": os.environ.get(
                "LETHE_BENCH_BROKER_URL", "redis://127.0.0.1:6379/11"
            ),
            "LETHE_BROKER_KEY_PREFIX": f"lethe-bench-{uuid.uuid4().hex[:8]}:",
            "LETHE_IDENTITY_PEPPER": PEPPER,
            "LETHE_VAR_DIR": str(var),
            "LETHE_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        }
        from sqlalchemy.orm import Session

        from app.core.auth import create_client
        from app.core.db import make_engine
        from app.core.migrate import upgrade

        upgrade(url)
        engine = make_engine(url)
        with Session(engine) as session:
            key = create_client(session, name="bench", scopes=["admin"]).key
            session.commit()
        engine.dispose()
        port = free_port()
        api_process = start_api(port=port, env=env)
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=120,
        )
        service = Service(env=env, var=var, api=api)
        try:
            wait_until(lambda: _ready(api), timeout=120)
            yield service
        finally:
            service.stop_workers()
            api_process.terminate()
            api_process.wait(timeout=30)


def _ready(api: httpx.Client) -> bool:
    try:
        return api.get("/readyz").status_code == 200
    except httpx.HTTPError:
        return False
