"""Lineage at scale: import 1,000,000 records (one identity, 32 float features each) from an NPZ
file through `lethe records import`, then resolve one subject who owns 100 of them.

    python bench/lineage.py --records 1000000 --resolutions 2000 [--json]
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
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import machine
from bench._support import percentile, scratch_database

ROOT = Path(__file__).resolve().parent.parent
TARGET_USER = "bench-target-user"
TARGET_RECORDS = 100


def write_records(path: Path, *, records: int, seed: int) -> None:
    """Subjects own a skewed number of records (geometric, mean ~4); one owns exactly 100."""
    rng = np.random.default_rng(seed)
    owners = np.repeat(np.arange(records), rng.geometric(0.25, size=records))[
        : records - TARGET_RECORDS
    ]
    values = np.char.add("bench-user-", owners.astype(str))
    values = np.concatenate([values, np.full(TARGET_RECORDS, TARGET_USER)])
    order = rng.permutation(records)
    np.savez(
        path,
        keys=np.char.add("r", np.arange(records).astype(str)),
        identity_types=np.full(records, "user_id"),
        identity_values=values[order],
        labels=rng.integers(0, 100, size=records),
        splits=rng.choice(np.array(["train", "holdout", "test"]), size=records, p=[0.8, 0.1, 0.1]),
        features=rng.normal(size=(records, 32)).astype(np.float32),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--resolutions", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, scratch_database("lethe_bench_lineage") as url:
        data = Path(tmp) / "records.npz"
        write_records(data, records=args.records, seed=args.seed)
        env = {k: v for k, v in os.environ.items() if not k.startswith("LETHE_")} | {
            "LETHE_DATABASE_URL": url,
            "LETHE_IDENTITY_PEPPER": "bench-pepper",
            "LETHE_BROKER_URL": "redis://127.0.0.1:6379/12",
        }
        os.environ.update(env)
        from sqlalchemy.orm import Session

        from app.core.auth import create_client
        from app.core.db import make_engine
        from app.core.migrate import upgrade
        from app.lineage.identity import IdentityFormat, IdentityType, identity_hash
        from app.lineage.service import IdentityHash, create_dataset, resolve_subjects

        upgrade(url)
        engine = make_engine(url)
        with Session(engine) as session:
            client = create_client(session, name="bench", scopes=["lineage:write"]).client
            dataset_id = create_dataset(session, client=client, name="bench", description=None).id
            session.commit()

        started = time.perf_counter()
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                "from app.cli import main; main()",
                "records",
                "import",
                str(dataset_id),
                str(data),
            ],
            cwd=ROOT,
            env=os.environ.copy(),
            capture_output=True,
            text=True,
            check=True,
        )
        wall = time.perf_counter() - started
        rate = re.search(r"\(([\d,]+) records/s\)", result.stdout)
        if rate is None:
            raise RuntimeError(f"lethe records import printed no rate: {result.stdout!r}")
        reported = float(rate.group(1).replace(",", ""))

        target = IdentityHash(
            type="user_id",
            hash=identity_hash(
                pepper=b"bench-pepper",
                identity_type=IdentityType.USER_ID,
                value=TARGET_USER,
                identity_format=IdentityFormat.RAW,
            ),
        )
        timings = []
        with Session(engine) as session:
            found = resolve_subjects(session, identities=[target]).record_count
            for _ in range(args.resolutions):
                t0 = time.perf_counter()
                resolve_subjects(session, identities=[target])
                timings.append(time.perf_counter() - t0)
                session.rollback()
        engine.dispose()

    report = {
        "machine": machine(),
        "command": "python bench/lineage.py " + " ".join(sys.argv[1:]),
        "records": args.records,
        "import_records_per_s": reported,
        "import_wall_s_including_process_start": round(wall, 1),
        "resolved_records": found,
        "resolve_p50_ms": round(percentile(timings, 50) * 1000, 3),
        "resolve_p99_ms": round(percentile(timings, 99) * 1000, 3),
    }
    if args.json:
        print(json.dumps(report))
        return
    for key, value in report.items():
        print(f"{key}: {value}")
    print(
        f"goals: import >= 20,000 records/s: {reported >= 20_000}; "
        f"resolve p99 < 10 ms: {report['resolve_p99_ms'] < 10}"
    )


if __name__ == "__main__":
    main()
