"""Fuzz the API from its own OpenAPI document: `lethe serve` (the embedded default, or Postgres
and Redis with `--postgres`) in a scratch directory, then `schemathesis run` with its admin key,
valid and invalid inputs (examples, coverage and fuzzing phases), the conformance checks and
Lethe's problem-document check (`bench/fuzz_checks.py`); then further fuzzing runs, each with
the next seed, until at least `--cases` cases. The failures found are the figure.

    python bench/fuzz.py --cases 5000 [--postgres] [--json]

Against a server that is already running, the same run is:

    SCHEMATHESIS_HOOKS=bench.fuzz_checks schemathesis run http://127.0.0.1:8000/openapi.json \\
        -H "Authorization: Bearer lth_..." --checks <CHECKS below, comma-separated> \\
        --phases examples,coverage,fuzzing --mode all --max-examples 105 --workers 1
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import machine
from bench._support import ROOT, scratch_database, serving

MAX_RUNS = 20
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "problem_document",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=5000, help="at least this many requests")
    parser.add_argument("--postgres", action="store_true", help="Postgres and Redis, not SQLite")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lethe-fuzz-") as work:
        if args.postgres:
            with scratch_database("lethe_bench_fuzz") as url:
                env = {
                    "LETHE_DATABASE_URL": url,
                    "LETHE_BROKER_URL": "redis://127.0.0.1:6379/12",
                    "LETHE_BROKER_KEY_PREFIX": f"lethe-bench-{uuid.uuid4().hex[:8]}:",
                    "LETHE_IDENTITY_PEPPER": "bench-pepper",
                }
                report = _fuzz(args, env=env, workdir=Path(work))
        else:
            report = _fuzz(args, env={}, workdir=Path(work))
    report |= {"machine": machine(), "command": "python bench/fuzz.py " + " ".join(sys.argv[1:])}
    if args.json:
        print(json.dumps(report))
        return
    for key, value in report.items():
        print(f"{key}: {value}")


def _fuzz(args: argparse.Namespace, *, env: dict[str, str], workdir: Path) -> dict[str, Any]:
    """Runs until at least `args.cases` cases: the first with the coverage phase's boundary
    cases, the next ones fuzzing only, each with the next seed (Hypothesis stops early on
    operations with little to vary)."""
    runs: list[dict[str, Any]] = []
    with serving(env, workdir) as (api, log_path):
        base = str(api.base_url).rstrip("/")
        document = api.get("/openapi.json").json()
        operations = sum(len(methods) for methods in document["paths"].values())
        per_operation = max(1, math.ceil(args.cases / operations))
        started = time.perf_counter()
        while not runs or sum(r["cases"] for r in runs) < args.cases:
            phases = "fuzzing" if runs else "examples,coverage,fuzzing"
            seed = args.seed + len(runs)
            runs.append(_run(base, api, workdir, phases=phases, seed=seed, examples=per_operation))
            if runs[-1]["cases"] == 0 or len(runs) >= MAX_RUNS:
                break
        elapsed = time.perf_counter() - started
        unhandled = log_path.read_text().count("unhandled_error")
    failures: dict[str, int] = {}
    for run in runs:
        for kind, count in run["failures_by_kind"].items():
            failures[kind] = failures.get(kind, 0) + count
    return {
        "setup": "postgres_redis" if args.postgres else "embedded",
        "operations": operations,
        "max_examples_per_operation": per_operation,
        "runs": len(runs),
        "cases": sum(r["cases"] for r in runs),
        "cases_with_failures": sum(r["cases_with_failures"] for r in runs),
        "failures_by_kind": failures,
        "errors": sum(r["errors"] for r in runs),
        "unhandled_errors_logged": unhandled,
        # Operations whose schema-valid inputs were all refused in a run (identity formats,
        # private callback URLs and the like are checked beyond what the schema says).
        "operations_refusing_valid_inputs": max(r["refusing_valid_inputs"] for r in runs),
        "seconds": round(elapsed, 1),
        "schemathesis_exit_codes": [r["exit"] for r in runs],
    }


def _run(
    base: str, api: httpx.Client, workdir: Path, *, phases: str, seed: int, examples: int
) -> dict[str, Any]:
    report_path = workdir / f"report-{seed}.json"
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "run", f"{base}/openapi.json"),
        *("-H", f"Authorization: {api.headers['Authorization']}"),
        *("--checks", ",".join(CHECKS), "--phases", phases, "--mode", "all"),
        *("--max-examples", str(examples), "--seed", str(seed), "--workers", "1"),
        *("--no-shrink", "--generation-database", "none", "--continue-on-failure"),
        *("--report", "json", "--report-json-path", str(report_path), "--no-color"),
    ]
    run = subprocess.run(
        command,
        cwd=workdir,
        env=os.environ | {"SCHEMATHESIS_HOOKS": "bench.fuzz_checks", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )
    if not report_path.exists():
        raise SystemExit(f"schemathesis did not finish:\n{run.stdout[-3000:]}{run.stderr[-3000:]}")
    return _summary(json.loads(report_path.read_text())) | {"exit": run.returncode}


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    """Cases, failures and errors out of one schemathesis JSON run report."""
    cases = report.get("test_cases", {})
    return {
        "cases": int(cases.get("generated", 0)),
        "cases_with_failures": int(cases.get("with_failures", 0)),
        "failures_by_kind": {
            f"{failure.get('code')} {failure.get('title')}": int(failure.get("count", 1))
            for failure in report.get("failures", [])
        },
        "errors": len(report.get("errors", [])),
        "refusing_valid_inputs": len(report.get("warnings", {}).get("validation_mismatch", [])),
    }


if __name__ == "__main__":
    main()
