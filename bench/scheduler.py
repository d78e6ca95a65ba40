"""Simulating the erasure scheduler: 100 requests over 30 days against one model.

Runs the scheduler's own rule (`app.erasure.scheduler.exact_start`) against a simulated clock:
requests arrive at random (a Poisson process, seeded); one worker runs one job at a time for
the model, as Lethe does; a mitigation takes `--mitigation-minutes`, an exact retrain
`--retrain-hours`. Each request is mitigated by the next mitigation job (which covers every
request waiting for one) and erased exactly by the retrain of its batch. The baseline, in the
same run, retrains once per request (no mitigation), first come first served.

    python -m bench.scheduler --requests 100 --days 30 --retrain-hours 1 6 24

Prints one JSON row per retrain time and a table; the figures are in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from app.erasure.scheduler import Policy, Waiting, exact_start

START = datetime(2026, 1, 1, tzinfo=UTC)
DUE_AFTER = timedelta(days=30)  # about one calendar month, the shortest Art. 12(3) allows


@dataclass
class Request:
    received_at: datetime
    mitigated_at: datetime | None = None
    exact_at: datetime | None = None

    @property
    def due_at(self) -> datetime:
        return self.received_at + DUE_AFTER


@dataclass
class Outcome:
    retrains: int
    mitigations: int
    requests: list[Request] = field(default_factory=list)


def arrivals(*, count: int, days: float, seed: int) -> list[datetime]:
    gaps = np.random.default_rng(seed).exponential(days / count, size=count)
    return [START + timedelta(days=float(t)) for t in np.cumsum(gaps)]


def simulate_scheduler(
    *, times: list[datetime], policy: Policy, retrain: timedelta, mitigation: timedelta
) -> Outcome:
    """One worker; at each moment it is free it runs the job due first."""
    requests = [Request(received_at=t) for t in times]
    outcome = Outcome(retrains=0, mitigations=0, requests=requests)
    clock = START
    arrived = 0
    batch: list[Request] = []  # waiting for the exact retrain
    unmitigated: list[Request] = []
    while arrived < len(requests) or batch:
        while arrived < len(requests) and requests[arrived].received_at <= clock:
            batch.append(requests[arrived])
            unmitigated.append(requests[arrived])
            arrived += 1
        start = exact_start(
            waiting=[Waiting(received_at=r.received_at, due_at=r.due_at) for r in batch],
            policy=policy,
        )
        next_arrival = requests[arrived].received_at if arrived < len(requests) else None
        if start is not None and start.at <= clock:
            covered, batch = batch, []
            clock += retrain
            outcome.retrains += 1
            for r in covered:
                r.exact_at = clock
            unmitigated = [r for r in unmitigated if r.exact_at is None]
        elif unmitigated:
            clock += mitigation
            outcome.mitigations += 1
            for r in unmitigated:
                r.mitigated_at = clock
            unmitigated = []
        else:
            candidates = [t for t in (start.at if start else None, next_arrival) if t is not None]
            clock = max(clock, min(candidates))
    return outcome


def simulate_baseline(*, times: list[datetime], retrain: timedelta) -> Outcome:
    """A retrain for every request, one at a time, in order of arrival."""
    requests = [Request(received_at=t) for t in times]
    free_at = START
    for r in requests:
        free_at = max(free_at, r.received_at) + retrain
        r.exact_at = free_at
    return Outcome(retrains=len(requests), mitigations=0, requests=requests)


def _hours(deltas: list[timedelta]) -> dict[str, float]:
    values = sorted(d.total_seconds() / 3600 for d in deltas)
    return {
        "median_h": round(statistics.median(values), 2),
        "p95_h": round(values[int(0.95 * (len(values) - 1))], 2),
        "max_h": round(values[-1], 2),
    }


def summarize(outcome: Outcome) -> dict[str, object]:
    reqs = outcome.requests
    exact = [r.exact_at - r.received_at for r in reqs if r.exact_at]
    exposure = [(r.mitigated_at or r.exact_at) - r.received_at for r in reqs if r.exact_at]
    late = [r for r in reqs if r.exact_at is None or r.exact_at > r.due_at]
    return {
        "retrains": outcome.retrains,
        "mitigation_jobs": outcome.mitigations,
        "mitigated_before_exact": sum(
            1 for r in reqs if r.mitigated_at and r.exact_at and r.mitigated_at < r.exact_at
        ),
        "receipt_to_exposure_end": _hours(exposure),
        "receipt_to_exact": _hours(exact),
        "past_due": len(late),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--retrain-hours", type=float, nargs="+", default=[1.0, 6.0, 24.0])
    parser.add_argument("--mitigation-minutes", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--due-margin-hours", type=float, default=168.0)
    parser.add_argument("--max-wait-hours", type=float, default=72.0)
    args = parser.parse_args()
    policy = Policy(
        batch_size=args.batch_size,
        due_margin=timedelta(hours=args.due_margin_hours),
        max_wait=timedelta(hours=args.max_wait_hours),
    )
    times = arrivals(count=args.requests, days=args.days, seed=args.seed)
    machine = platform.processor() or platform.machine()
    print(f"# machine: {machine}, python {platform.python_version()}")
    rows = []
    for hours in args.retrain_hours:
        retrain = timedelta(hours=hours)
        scheduled = simulate_scheduler(
            times=times,
            policy=policy,
            retrain=retrain,
            mitigation=timedelta(minutes=args.mitigation_minutes),
        )
        baseline = simulate_baseline(times=times, retrain=retrain)
        row = {
            "retrain_hours": hours,
            "requests": args.requests,
            "days": args.days,
            "seed": args.seed,
            "policy": {
                "batch_size": args.batch_size,
                "due_margin_hours": args.due_margin_hours,
                "max_wait_hours": args.max_wait_hours,
            },
            "scheduler": summarize(scheduled),
            "retrain_per_request": summarize(baseline),
        }
        rows.append(row)
        print(json.dumps(row))
    print()
    print(
        "| retrain | way | retrains | exposure median / max (h) "
        "| exact median / max (h) | past due |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        for way in ("scheduler", "retrain_per_request"):
            s = row[way]
            assert isinstance(s, dict)
            exposure, exact = s["receipt_to_exposure_end"], s["receipt_to_exact"]
            print(
                f"| {row['retrain_hours']} h | {way} | {s['retrains']} | "
                f"{exposure['median_h']} / {exposure['max_h']} | "
                f"{exact['median_h']} / {exact['max_h']} | {s['past_due']} |"
            )


if __name__ == "__main__":
    main()
