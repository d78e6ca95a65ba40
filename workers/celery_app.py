"""The Celery worker: the API's configured Celery instance plus the task modules."""

from __future__ import annotations

import os
from typing import Any

import structlog
from celery.signals import setup_logging, worker_init, worker_ready

from app.core.broker import (
    RECONCILE,
    SCAN_ORPHANS,
    SWEEP_ARTIFACT_CACHES,
    SWEEP_PURGE,
    SWEEP_WEBHOOKS,
    get_celery,
)
from app.core.config import get_settings
from app.core.observability import configure_logging
from app.wiring import connect_domains

connect_domains()
celery_app = get_celery()
celery_app.conf.include = [
    "workers.tasks.artifact_cache",
    "workers.tasks.erasure",
    "workers.tasks.generation",
    "workers.tasks.jobs",
    "workers.tasks.purge",
    "workers.tasks.webhooks",
]
# Beat sweeps the webhook and purge outboxes and reconciles jobs, so nothing depends on one
# broker message.
celery_app.conf.beat_schedule = {
    **(celery_app.conf.beat_schedule or {}),
    "jobs-reconcile": {
        "task": RECONCILE,
        "schedule": get_settings().reconcile_interval_seconds,
    },
    "artifact-cache-sweep": {
        "task": SWEEP_ARTIFACT_CACHES,
        "schedule": get_settings().artifact_cache_sweep_seconds,
    },
    "orphan-scan": {
        "task": SCAN_ORPHANS,
        "schedule": get_settings().orphan_scan_seconds,
    },
    "purge-sweep": {
        "task": SWEEP_PURGE,
        "schedule": get_settings().reconcile_interval_seconds,
    },
    "webhooks-sweep": {
        "task": SWEEP_WEBHOOKS,
        "schedule": get_settings().webhook_sweep_seconds,
    },
}


@setup_logging.connect
def _configure_logging(**_: Any) -> None:
    settings = get_settings()
    configure_logging(level=settings.log_level, json_lines=settings.log_json)


@worker_init.connect
def _configure_device(**_: Any) -> None:
    """Resolve `LETHE_DEVICE` once, so a worker asked for CUDA on a machine without it stops
    at start with that reason instead of failing its first job."""
    # Asking NVML, not the CUDA driver, whether there is a GPU keeps CUDA uninitialized in
    # the parent process, which the pool's child processes are forked from.
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    from workers.engine.device import configure

    settings = get_settings()
    device = configure(
        device=settings.device,
        mixed_precision=settings.mixed_precision,
        threads=settings.torch_threads,
    )
    structlog.get_logger(__name__).info(
        "worker_device",
        device=str(device),
        mixed_precision=settings.mixed_precision,
        torch_threads=settings.torch_threads or "default",
    )


@worker_ready.connect
def _scan_at_start(**_: Any) -> None:
    """Look for unowned files once at start, not only after the first beat interval, and drop
    cached copies of artifacts purged while this worker was down."""
    from app.core.broker import enqueue
    from workers.pipeline.storage import artifact_cache

    enqueue(SCAN_ORPHANS, args=[])
    cache = artifact_cache()
    if cache is not None:
        try:
            cache.sweep()
        except Exception as exc:  # the bucket unreachable: beat's sweep tries again
            structlog.get_logger(__name__).warning(
                "artifact_cache_sweep_failed", error_type=type(exc).__name__
            )
