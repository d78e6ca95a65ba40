"""Lineage at scale: import N records (one identity, 32 float features each) from an NPZ file
through `lethe records import`, beside a bare COPY of the same rows (subjects, identities and
records already hashed) into a fresh database with the same schema; then resolve one subject who
owns 100 records, and plan the SISA retraining for them (which shards and slices hold them).

    python bench/lineage.py --records 1000000 --resolutions 2000 [--json]
    python bench/lineage.py --records 10000000 --resolutions 2000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._lineage_data import CopyFiles, owners_of, write_copy_files, write_npz
from bench._machine import machine
from bench._support import percentile, scratch_database
from bench._target_plan import plan_timings

ROOT = Path(__file__).resolve().parent.parent
PEPPER = "bench-pepper"
_BLOCK = 1 << 20


def _prepare(url: str) -> uuid.UUID:
    """The schema and one empty dataset; returns the dataset's id."""
    from sqlalchemy.orm import Session

    from app.core.auth import create_client
    from app.core.db import make_engine
    from app.core.migrate import upgrade
    from app.lineage.service import create_dataset

    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        client = create_client(session, name="bench", scopes=["lineage:write"]).client
        dataset = create_dataset(session, client=client, name="bench", description=None)
        dataset.feature_count, dataset.record_kind = 32, "tabular"
        dataset_id = dataset.id
        session.commit()
    engine.dispose()
    return dataset_id


def _database_bytes(url: str) -> int:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    assert row is not None
    return int(row[0])


def _bare_copy(url: str, files: CopyFiles) -> float:
    """Seconds to COPY the three files, streamed as they are, in one transaction."""
    import psycopg

    tables = (
        (files.subjects, "COPY data_subjects (id, created_at) FROM STDIN"),
        (files.identities, "COPY subject_identities (subject_id, type, hash) FROM STDIN"),
        (
            files.records,
            "COPY training_records (dataset_id, key, subject_id, split, label, features, prompt,"
            " completion, created_at) FROM STDIN",
        ),
    )
    started = time.perf_counter()
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        with conn.cursor() as cursor:
            for path, statement in tables:
                with cursor.copy(statement) as copy, path.open("rb") as source:
                    while block := source.read(_BLOCK):
                        copy.write(block)
        conn.commit()
    return time.perf_counter() - started


def _import(url: str, dataset_id: uuid.UUID, data: Path) -> tuple[float, float]:
    """`lethe records import` in its own process: (the rate it reports, wall seconds)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LETHE_")} | {
        "LETHE_DATABASE_URL": url,
        "LETHE_IDENTITY_PEPPER": PEPPER,
        "LETHE_BROKER_URL": "redis://127.0.0.1:6379/12",
    }
    command = ["records", "import", str(dataset_id), str(data)]
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", "from app.cli import main; main()", *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - started
    rate = re.search(r"\(([\d,]+) records/s\)", result.stdout)
    if rate is None:
        raise RuntimeError(f"lethe records import printed no rate: {result.stdout!r}")
    return float(rate.group(1).replace(",", "")), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--resolutions", type=int, default=2000)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--slices", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    report: dict[str, Any] = {
        "machine": machine(),
        "command": "python bench/lineage.py " + " ".join(sys.argv[1:]),
        "records": args.records,
    }
    with (
        tempfile.TemporaryDirectory() as tmp,
        scratch_database("lethe_bench_lineage") as url,
        scratch_database("lethe_bench_copy") as copy_url,
    ):
        owners = owners_of(records=args.records, seed=args.seed)
        report["subjects"] = int(np.unique(owners).size)
        data = Path(tmp) / "records.npz"
        write_npz(data, owners=owners, seed=args.seed)

        copy_dataset = _prepare(copy_url)
        files = write_copy_files(
            Path(tmp),
            owners=owners,
            seed=args.seed,
            dataset_id=copy_dataset,
            pepper=PEPPER.encode(),
            created_at="2026-01-01 00:00:00+00",
        )
        del owners
        copy_s = _bare_copy(copy_url, files)
        copy_rate = args.records / copy_s
        report |= {
            "bare_copy_s": round(copy_s, 1),
            "bare_copy_records_per_s": round(copy_rate),
            "bare_copy_database_mb": round(_database_bytes(copy_url) / 2**20),
        }
        for path in (files.subjects, files.identities, files.records):
            path.unlink()

        dataset_id = _prepare(url)
        rate, wall = _import(url, dataset_id, data)
        report |= {
            "import_records_per_s": rate,
            "import_wall_s_including_process_start": round(wall, 1),
            "import_to_copy_ratio": round(rate / copy_rate, 3),
            "import_database_mb": round(_database_bytes(url) / 2**20),
        }
        report |= _resolve_and_plan(url, args)

    if args.json:
        print(json.dumps(report))
        return
    for key, value in report.items():
        print(f"{key}: {value}")
    print(
        f"goals: import >= 20,000 records/s: {rate >= 20_000}; "
        f"import >= half the bare COPY's rate: {report['import_to_copy_ratio'] >= 0.5}; "
        f"resolve p99 < 10 ms: {report['resolve_p99_ms'] < 10}"
    )


def _resolve_and_plan(url: str, args: argparse.Namespace) -> dict[str, Any]:
    from sqlalchemy.orm import Session

    from app.core.db import make_engine
    from app.lineage.identity import IdentityFormat, IdentityType, identity_hash
    from app.lineage.service import IdentityHash, resolve_subjects
    from bench._lineage_data import TARGET_USER

    target = IdentityHash(
        type="user_id",
        hash=identity_hash(
            pepper=PEPPER.encode(),
            identity_type=IdentityType.USER_ID,
            value=TARGET_USER,
            identity_format=IdentityFormat.RAW,
        ),
    )
    engine = make_engine(url)
    timings = []
    with Session(engine) as session:
        found = resolve_subjects(session, identities=[target]).record_count
        for _ in range(args.resolutions):
            t0 = time.perf_counter()
            resolve_subjects(session, identities=[target])
            timings.append(time.perf_counter() - t0)
            session.rollback()
        plan = plan_timings(
            session,
            target=target,
            shards=args.shards,
            slices=args.slices,
            seed=args.seed,
            repeats=args.resolutions,
        )
    engine.dispose()
    return {
        "resolved_records": found,
        "resolve_p50_ms": round(percentile(timings, 50) * 1000, 3),
        "resolve_p99_ms": round(percentile(timings, 99) * 1000, 3),
        **plan,
    }


if __name__ == "__main__":
    main()
