"""Intake throughput and latency: `POST /v1/erasure-requests` against a minimal FastAPI endpoint
that inserts one row, on the same Postgres, one uvicorn worker each, in the same run.

    python bench/intake.py --requests 3000 --concurrency 16 [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import machine
from bench._support import free_port, percentile, scratch_database

ROOT = Path(__file__).resolve().parent.parent


def _start(app_args: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            *app_args,
            "--port",
            str(port),
            "--workers",
            "1",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{app_args[0]} did not start")


async def _load(
    url: str, headers: dict[str, str], *, total: int, concurrency: int
) -> dict[str, Any]:
    latencies: list[float] = []
    failures = 0
    counter = iter(range(total))

    async def one_worker(client: httpx.AsyncClient) -> None:
        nonlocal failures
        for n in counter:
            body = {"identities": [{"type": "email", "value": f"bench-{n}@example.com"}]}
            started = time.perf_counter()
            response = await client.post(url, json=body, headers=headers)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 202:
                failures += 1

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        started = time.perf_counter()
        await asyncio.gather(*(one_worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "requests": total,
        "failures": failures,
        "throughput_rps": round(total / elapsed, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
    }


def _median(runs: list[dict[str, Any]]) -> float:
    values = sorted(float(r["throughput_rps"]) for r in runs)
    return values[len(values) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians")
    parser.add_argument("--api-threads", type=int, default=2, help="LETHE_API_THREADS")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with scratch_database("lethe_bench_intake") as url:
        from sqlalchemy.orm import Session

        from app.core.auth import create_client
        from app.core.db import make_engine
        from app.core.migrate import upgrade

        upgrade(url)
        engine = make_engine(url)
        with Session(engine) as session:
            key = create_client(session, name="bench", scopes=["requests:write"]).key
            session.commit()
        engine.dispose()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LETHE_")} | {
            "LETHE_DATABASE_URL": url,
            "LETHE_BROKER_URL": "redis://127.0.0.1:6379/12",
            "LETHE_BROKER_KEY_PREFIX": f"lethe-bench-{uuid.uuid4().hex[:8]}:",
            "LETHE_IDENTITY_PEPPER": "bench-pepper",
            "BENCH_DATABASE_URL": url,
            "LETHE_API_THREADS": str(args.api_threads),
        }
        targets = {
            "minimal": ("bench.minimal_app:app", "/rows", {}),
            "lethe": (
                "app.main:create_app --factory",
                "/v1/erasure-requests",
                {"Authorization": f"Bearer {key}"},
            ),
        }
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
        # Alternate the two servers round by round, so drift on the machine hits both alike.
        for _ in range(args.rounds):
            for name, (app, path, headers) in targets.items():
                port = free_port()
                process = _start(app.split(), env, port)
                try:
                    target = f"http://127.0.0.1:{port}{path}"
                    asyncio.run(
                        _load(target, headers, total=args.warmup, concurrency=args.concurrency)
                    )
                    rounds[name].append(
                        asyncio.run(
                            _load(
                                target, headers, total=args.requests, concurrency=args.concurrency
                            )
                        )
                    )
                finally:
                    process.terminate()
                    process.wait(timeout=20)
        import redis

        client = redis.Redis.from_url("redis://127.0.0.1:6379/12")
        stale = list(client.scan_iter(match=f"{env['LETHE_BROKER_KEY_PREFIX']}*"))
        if stale:
            client.delete(*stale)
    results = {
        name: min(runs, key=lambda r: abs(r["throughput_rps"] - _median(runs)))
        for name, runs in rounds.items()
    }
    ratio = results["lethe"]["throughput_rps"] / results["minimal"]["throughput_rps"]
    report = {
        "machine": machine(),
        "command": "python bench/intake.py " + " ".join(sys.argv[1:]),
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "throughput_rounds": {n: [r["throughput_rps"] for r in runs] for n, runs in rounds.items()},
        **{f"{k}": v for k, v in results.items()},
        "throughput_ratio": round(ratio, 3),
        "goal_met": ratio >= 0.5,
    }
    if args.json:
        print(json.dumps(report))
        return
    print(f"machine: {report['machine']}")
    print(f"{'endpoint':<10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'failures':>8}")
    for name, r in results.items():
        print(
            f"{name:<10} {r['throughput_rps']:>8} {r['p50_ms']:>8} {r['p99_ms']:>8}"
            f" {r['failures']:>8}"
        )
    print(f"throughput per round: {report['throughput_rounds']}")
    print(f"lethe / minimal throughput (median rounds): {ratio:.0%} (goal: at least 50%)")


if __name__ == "__main__":
    main()
