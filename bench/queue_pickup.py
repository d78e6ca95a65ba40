"""How fast the embedded queue hands tasks to a worker: one worker (prefork, concurrency 1, as
`lethe serve` runs it) on SQLite and the local queue takes and runs `--tasks` planning tasks for
requests that do not exist (a few milliseconds of work each); the time per task is almost all
queue.

    python bench/queue_pickup.py --tasks 20 [--root DIR]

`--root` runs another checkout of Lethe (e.g. an older commit exported with `git archive`) with
this virtual environment, to compare.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._machine import machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args()
    root = args.root.resolve()
    with tempfile.TemporaryDirectory(prefix="lethe-pickup-") as var:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LETHE_")} | {
            "LETHE_VAR_DIR": var,
            "LETHE_LOG_JSON": "false",
            "PYTHONPATH": str(root),
        }
        os.environ.update(env)
        sys.path.insert(0, str(root))
        os.chdir(var)
        from app.core.broker import PLAN_ERASURE_REQUEST, enqueue
        from app.core.migrate import ensure_schema

        ensure_schema()
        log_path = Path(var) / "worker.log"
        with log_path.open("wb") as log:
            worker = subprocess.Popen(
                [
                    *(sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker"),
                    *("-Q", "cpu", "--concurrency", "1", "--loglevel", "INFO"),
                ],
                cwd=var,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            while b" ready." not in log_path.read_bytes():
                time.sleep(0.2)
            time.sleep(2)
            started = time.perf_counter()
            for _ in range(args.tasks):
                enqueue(PLAN_ERASURE_REQUEST, args=[str(uuid.uuid4())])
            while log_path.read_bytes().count(b"succeeded in") < args.tasks:
                time.sleep(0.02)
            elapsed = time.perf_counter() - started
        finally:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    print(f"root: {root}")
    print(f"tasks: {args.tasks} in {elapsed:.2f} s, {elapsed / args.tasks * 1000:.0f} ms per task")
    print(f"machine: {machine()}")
    print("command: python bench/queue_pickup.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
