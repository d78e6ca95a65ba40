"""The Celery worker: the API's configured Celery instance plus the task modules."""

from __future__ import annotations

from typing import Any

from celery.signals import setup_logging, worker_ready

from app.core.broker import RECONCILE, SCAN_ORPHANS, SWEEP_PURGE, SWEEP_WEBHOOKS, get_celery
from app.core.config import get_settings
from app.core.observability import configure_logging
from app.wiring import connect_domains

connect_domains()
celery_app = get_celery()
celery_app.conf.include = [
    "workers.tasks.erasure",
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


@worker_ready.connect
def _scan_at_start(**_: Any) -> None:
    """Look for unowned files once at start, not only after the first beat interval."""
    from app.core.broker import enqueue

    enqueue(SCAN_ORPHANS, args=[])
