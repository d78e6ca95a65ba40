"""A process that has imported what a worker needs (torch, Celery, the engine) and forks real
Celery workers on demand: a fresh worker costs a fork instead of a minute of imports on a busy
machine, so the fault suite can kill one worker after another within its time budget.

Each worker it forks is a complete `celery -A workers.celery_app worker --beat` process in a
process group of its own (the test kills the group with SIGKILL, worker and beat together),
with its log in a file of its own. It dies with the zygote, which dies with the test process
(it is started with `app.core.processes.start_child`).

Protocol, one line each way: `spawn <log file> <beat schedule file> <node name>` is answered
with the new worker's process id.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def _preload() -> int:
    """Import what a worker needs and run one tiny training, so a forked worker starts warm.
    Returns the number of threads torch would use: the warm-up runs on one (no thread pool is
    started before the fork), each worker gets them back."""
    import celery.apps.worker
    import celery.bin.celery  # noqa: F401
    import kombu.transport.redis  # noqa: F401
    import numpy as np
    import torch

    # The Celery app and the pipeline, but not the task modules: `workers.tasks.jobs` names
    # the worker after its process id, so it loads in each worker.
    import workers.celery_app
    import workers.pipeline.evaluation
    import workers.pipeline.monolithic_unlearning
    import workers.pipeline.orphans
    import workers.pipeline.sisa_unlearning
    import workers.pipeline.sweeper
    import workers.pipeline.training  # noqa: F401
    from workers.engine.architectures import get_architecture
    from workers.engine.data import RecordArrays
    from workers.engine.training import predict_proba, train_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    data = RecordArrays(
        record_ids=np.arange(32, dtype=np.int64),
        features=rng.random((32, 1, 8, 8), dtype=np.float32),
        labels=rng.integers(0, 10, 32),
        subject_ids=np.arange(32, dtype=np.int64),
    )
    spec = get_architecture("mlp").with_hyperparameters(epochs=1)
    model = train_model(spec=spec, data=data, num_classes=10, seed=0)
    predict_proba(model=model, features=data.features)
    return threads


def _worker(zygote: int, threads: int, log_path: str, schedule: str, name: str) -> None:
    """In the forked child: become a Celery worker; never return."""
    try:
        import torch

        torch.set_num_threads(threads)
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != zygote:
            os._exit(1)
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        sys.argv = [
            *("celery", "-A", "workers.celery_app", "worker"),
            *("-Q", "cpu,gpu", "--pool", "solo", "--loglevel", "INFO"),
            *("-n", name, "--beat", "--schedule", schedule),
            # Alone on its queues: no waiting for neighbours at start.
            *("--without-mingle", "--without-gossip", "--without-heartbeat"),
        ]
        from celery.__main__ import main

        main()
    finally:
        os._exit(0)


def serve() -> None:
    threads = _preload()
    # Workers are reaped as they die, so a killed one is gone at once.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    zygote = os.getpid()
    print("ready", flush=True)
    for line in sys.stdin:
        command, *args = line.split()
        if command != "spawn":
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _worker(zygote, threads, *args)
        print(pid, flush=True)


if __name__ == "__main__":
    serve()
