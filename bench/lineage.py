"""Lineage at scale: import N records (one identity, 32 float features each) from an NPZ file
through `lethe records import`, beside a bare COPY of the same rows (subjects, identities and
records already hashed) into a fresh database with the same schema; then resolve one subject who
owns 100 records, and plan the SISA retraining for them (which shards and slices hold them).

    python bench/lineage.py --records 1000000 --resolutions 2000 [--json]
    python bench/lineage.py --records 10000000 --resolutions 2000

Each phase is reported on stderr as it starts and ends, and the import's progress (records
written, records/s) every `--progress-every` seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
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
_STARTED = time.perf_counter()
# `lethe records import`, reporting its peak resident memory on exit (Linux's VmHWM: a child's
# rusage would count the benchmark's own memory, shared at fork).
_IMPORTER = """
import atexit, pathlib, re, sys
def _peak():
    status = pathlib.Path("/proc/self/status")
    found = re.search(r"VmHWM:\\s+(\\d+) kB", status.read_text()) if status.exists() else None
    if found:
        print(f"peak resident memory: {found.group(1)} kB", file=sys.stderr)
atexit.register(_peak)
from app.cli import main
main()
"""


def _say(message: str) -> None:
    """A progress line on stderr, stamped with the seconds since the benchmark started."""
    print(f"[{time.perf_counter() - _STARTED:7.1f} s] {message}", file=sys.stderr, flush=True)


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


def _records_written(url: str) -> int:
    """Training records inserted so far, as the statistics count them (cheap, no scan)."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables"
            " WHERE relname = 'training_records'"
        ).fetchone()
    return int(row[0]) if row else 0


def _report_progress(url: str, *, every: float, done: threading.Event) -> None:
    started = time.perf_counter()
    while not done.wait(every):
        written = _records_written(url)
        rate = written / (time.perf_counter() - started)
        _say(f"import: {written:,} records written, {rate:,.0f} records/s so far")


def _import(
    url: str, dataset_id: uuid.UUID, data: Path, *, every: float
) -> tuple[float, float, int | None]:
    """`lethe records import` in its own process: (the rate it reports, wall seconds, its peak
    resident memory in MB where the system says)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LETHE_")} | {
        "LETHE_DATABASE_URL": url,
        "LETHE_IDENTITY_PEPPER": PEPPER,
        "LETHE_BROKER_URL": "redis://127.0.0.1:6379/12",
    }
    command = ["records", "import", str(dataset_id), str(data)]
    done = threading.Event()
    progress = threading.Thread(
        target=_report_progress, args=(url,), kwargs={"every": every, "done": done}, daemon=True
    )
    started = time.perf_counter()
    progress.start()
    try:
        result = subprocess.run(
            [sys.executable, "-c", _IMPORTER, *command],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        done.set()
        progress.join()
    wall = time.perf_counter() - started
    rate = re.search(r"\(([\d,]+) records/s\)", result.stdout)
    if rate is None:
        raise RuntimeError(f"lethe records import printed no rate: {result.stdout!r}")
    peak = re.search(r"peak resident memory: (\d+) kB", result.stderr)
    peak_mb = round(int(peak.group(1)) / 1024) if peak else None
    return float(rate.group(1).replace(",", "")), wall, peak_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--resolutions", type=int, default=2000)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--slices", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--progress-every", type=float, default=30.0, help="seconds")
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
        _say(f"generating {args.records:,} records (NPZ file, then the COPY files)")
        owners = owners_of(records=args.records, seed=args.seed)
        report["subjects"] = int(np.unique(owners).size)
        data = Path(tmp) / "records.npz"
        write_npz(data, owners=owners, seed=args.seed)
        _say(f"NPZ file written: {data.stat().st_size / 2**20:,.0f} MB")

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
        _say("COPY files written; bare COPY starting")
        copy_s = _bare_copy(copy_url, files)
        copy_rate = args.records / copy_s
        report |= {
            "bare_copy_s": round(copy_s, 1),
            "bare_copy_records_per_s": round(copy_rate),
            "bare_copy_database_mb": round(_database_bytes(copy_url) / 2**20),
        }
        _say(f"bare COPY done: {copy_s:.1f} s, {copy_rate:,.0f} records/s")
        for path in (files.subjects, files.identities, files.records):
            path.unlink()

        dataset_id = _prepare(url)
        _say("lethe records import starting")
        rate, wall, peak_mb = _import(url, dataset_id, data, every=args.progress_every)
        report |= {
            "import_records_per_s": rate,
            "import_wall_s_including_process_start": round(wall, 1),
            "import_to_copy_ratio": round(rate / copy_rate, 3),
            "import_database_mb": round(_database_bytes(url) / 2**20),
            "import_peak_memory_mb": peak_mb,
        }
        _say(f"import done: {rate:,.0f} records/s, ratio to COPY {rate / copy_rate:.3f}")
        _say(f"resolving the target person {args.resolutions:,} times")
        report |= _resolve_and_plan(url, args)
        _say(
            f"SISA plan: resolve and plan p50/p99 {report['resolve_and_plan_p50_ms']}/"
            f"{report['resolve_and_plan_p99_ms']} ms; dropping the scratch databases"
        )

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
        _say(
            f"resolve p50/p99 {percentile(timings, 50) * 1000:.2f}/"
            f"{percentile(timings, 99) * 1000:.2f} ms; planning SISA {args.resolutions:,} times"
        )
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
