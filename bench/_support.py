"""Helpers shared by the service benchmarks: scratch Postgres databases and machine facts."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, text

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
