"""The Celery app with a probe: each task's duration and the worker process's peak resident
memory during it (the kernel's high-water mark, reset as the task starts), one JSON line per
task in the file `BENCH_TASK_LOG` names. The pipeline (and torch) is imported as the worker
starts, before its idle resident size is logged. Start a worker with `-A bench._worker_probe`."""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any

from celery.signals import task_postrun, task_prerun, worker_ready

from workers.celery_app import celery_app

__all__ = ["celery_app"]

_started: dict[str, tuple[float, float]] = {}


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        found = re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.MULTILINE)
    return int(found.group(1)) if found else 0


def _log(entry: dict[str, Any]) -> None:
    with open(os.environ["BENCH_TASK_LOG"], "a") as out:
        out.write(json.dumps(entry) + "\n")


def _ready(**_: Any) -> None:
    # The tasks import torch and the pipeline on first use; importing them now keeps that
    # one-off cost out of the first task's time.
    import workers.pipeline.evaluation
    import workers.pipeline.sisa_unlearning
    import workers.pipeline.training  # noqa: F401

    _log({"event": "ready", "pid": os.getpid(), "rss_mb": _status_kb("VmRSS") / 1024})


def _before(task_id: str, **_: Any) -> None:
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # resets VmHWM to the current resident size
    _started[task_id] = (time.time(), time.perf_counter())


def _after(task_id: str, task: Any, args: Any = None, **_: Any) -> None:
    wall, started = _started.pop(task_id, (time.time(), time.perf_counter()))
    _log(
        {
            "event": "task",
            "pid": os.getpid(),
            "task": task.name,
            "args": [str(a) for a in (args or [])],
            "start": wall,
            "seconds": time.perf_counter() - started,
            "peak_rss_mb": _status_kb("VmHWM") / 1024,
            "rss_mb": _status_kb("VmRSS") / 1024,
        }
    )


worker_ready.connect(_ready, weak=False)
task_prerun.connect(_before, weak=False)
task_postrun.connect(_after, weak=False)
