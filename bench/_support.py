"""Helpers shared by the service benchmarks: scratch Postgres databases, `lethe serve` in a
scratch directory, and waiting."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent

PG_ADMIN_URL = os.environ.get("LETHE_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """A new, empty Postgres database for one benchmark run, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(f"{PG_ADMIN_URL}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG_ADMIN_URL}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def start_api(*, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """The API under uvicorn on `port`, quiet, as the benchmarks run it beside their workers."""
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory"),
            *("--port", str(port), "--no-access-log", "--log-level", "warning"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def register_dataset(api: Any, *, data: Any, name: str) -> dict[str, Any]:
    """Register a dataset and its records (people as `user_id`s) through the API, in calls of
    2,000 records; returns the dataset."""
    dataset: dict[str, Any] = api.post("/v1/datasets", json={"name": name}).json()
    for split in ("train", "holdout", "test"):
        arrays = getattr(data, split)
        rows = [
            {
                "key": f"{split}-{int(r)}",
                "label": int(y),
                "split": split,
                "identities": [{"type": "user_id", "value": f"p-{int(s)}"}],
                "features": x.tolist(),
            }
            for r, s, x, y in zip(
                arrays.record_ids, arrays.subject_ids, arrays.features, arrays.labels, strict=True
            )
        ]
        for start in range(0, len(rows), 2000):
            api.post(
                f"/v1/datasets/{dataset['id']}/records",
                json={"records": rows[start : start + 2000]},
            ).raise_for_status()
    return dataset


T = TypeVar("T")


def wait_until(predicate: Callable[[], T | None], timeout: float, every: float = 0.1) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"no result within {timeout:.0f} s")


@contextmanager
def serving(env: dict[str, str], workdir: Path) -> Iterator[tuple[httpx.Client, Path]]:
    """`lethe serve` in `workdir` with `env` on top of a clean environment (nothing set: the
    embedded default), and a client holding the admin key it prints; stopped afterwards."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LETHE_")}
    log_path = workdir / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from app.cli import main; main()",
                "serve",
                "--port",
                str(port),
            ],
            cwd=workdir,
            env=clean | {"LETHE_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)} | env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        found = wait_until(lambda: re.search(r"lth_[A-Za-z0-9_-]+", log_path.read_text()), 120)
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {found.group(0)}"},
            timeout=120,
        )
        wait_until(lambda: _ready(api), timeout=120)
        yield api, log_path
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _ready(api: httpx.Client) -> bool:
    try:
        return api.get("/readyz").status_code == 200
    except httpx.HTTPError:
        return False
