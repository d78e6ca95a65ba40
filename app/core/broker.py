"""The Celery application as the API sees it: a producer of named tasks, nothing more.

The worker (`workers.celery_app`) uses this same configured instance and adds the task code.
The broker is only a doorbell: every task re-reads its row, so a lost message loses no work.
A doorbell for rows written in a transaction rings only once that transaction has committed
(`enqueue_after_commit`): a task must never look for a row that is not there yet, or never
will be.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Hashable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import structlog
from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeout
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from app.core import embedded_queue
from app.core.config import EMBEDDED_BROKER, Settings, get_settings

PLAN_ERASURE_REQUEST = "lethe.erasure.plan_request"
DELIVER_WEBHOOKS = "lethe.webhooks.deliver"
SWEEP_WEBHOOKS = "lethe.webhooks.sweep"
SWEEP_PURGE = "lethe.registry.sweep_purge"
SCAN_ORPHANS = "lethe.registry.scan_orphans"
RUN_JOB = "lethe.jobs.run"
RUN_SHARD = "lethe.jobs.run_shard"
FINISH_JOB = "lethe.jobs.finish"
RECONCILE = "lethe.jobs.reconcile"
PREDICT = "lethe.models.predict"
GENERATE = "lethe.models.generate"
EVALUATE_VERSION = "lethe.models.evaluate"
SWEEP_ARTIFACT_CACHES = "lethe.artifacts.sweep_caches"
# Remote-control commands, broadcast to every worker (`workers.tasks.artifact_cache`).
EVICT_ARTIFACTS = "lethe_evict_artifacts"
SWEEP_ARTIFACT_CACHE = "lethe_sweep_artifact_cache"
QUEUE_CPU = "cpu"
QUEUE_GPU = "gpu"
# Training and unlearning go to the `gpu` queue; a machine without a GPU worker runs a worker
# with `-Q cpu,gpu` (as `lethe serve` does) and trains on the CPU.
TRAINING_QUEUE = QUEUE_GPU
PREDICT_TIMEOUT_SECONDS = 60
EMBEDDED_TRANSPORT = "app.core.embedded_queue:Transport"

log = structlog.get_logger(__name__)


def celery_config(settings: Settings) -> dict[str, Any]:
    config: dict[str, Any] = {
        "broker_url": settings.broker_url,
        "task_default_queue": QUEUE_CPU,
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "timezone": "UTC",
    }
    if settings.broker_url.startswith(("redis://", "rediss://")):
        config["result_backend"] = settings.broker_url
        if settings.broker_key_prefix:
            prefix = {"global_keyprefix": settings.broker_key_prefix}
            config["result_backend_transport_options"] = prefix
    else:
        results = (settings.var_dir / "task-results.sqlite").resolve()
        config["result_backend"] = f"db+sqlite:///{results}"
    if settings.broker_url == EMBEDDED_BROKER:
        # kombu's filesystem transport, made responsive and kept under the var directory.
        config["broker_transport"] = EMBEDDED_TRANSPORT
        config["broker_transport_options"] = embedded_queue.transport_options(settings.broker_dir)
    else:
        config["broker_transport_options"] = {"visibility_timeout": 3600}
        if settings.broker_key_prefix:
            config["broker_transport_options"]["global_keyprefix"] = settings.broker_key_prefix
    return config


@lru_cache
def get_celery() -> Celery:
    celery = Celery("lethe")
    celery.conf.update(celery_config(get_settings()))
    return celery


def enqueue(
    task_name: str, *, args: list[Any], queue: str = QUEUE_CPU, countdown: float = 0
) -> bool:
    """Ring the doorbell; a failure is logged, not raised: the reconciler finds the row later."""
    try:
        get_celery().send_task(
            task_name, args=args, queue=queue, retry=False, countdown=countdown or None
        )
        return True
    except Exception as exc:  # the broker being down must not fail a committed request
        log.warning("enqueue_failed", task=task_name, error_type=type(exc).__name__)
        return False


def broadcast(command: str, *, arguments: dict[str, Any]) -> bool:
    """Send a remote-control command to every worker, without waiting for replies. A failure,
    or a broker without broadcast (the embedded one), is logged, not raised."""
    try:
        get_celery().control.broadcast(command, arguments=arguments)
        return True
    except Exception as exc:
        log.warning("broadcast_failed", command=command, error_type=type(exc).__name__)
        return False


@dataclass(frozen=True)
class _Doorbell:
    task_name: str
    args: list[Any]
    queue: str
    countdown: float


_AFTER_COMMIT = "lethe.broker.after_commit"
_unique = itertools.count()


def enqueue_after_commit(
    session: Session,
    task_name: str,
    *,
    args: list[Any],
    queue: str = QUEUE_CPU,
    countdown: float = 0,
    dedupe_key: Hashable | None = None,
) -> None:
    """Enqueue `task_name` once `session`'s transaction commits; a rollback forgets it.

    Calls with the same `dedupe_key` in one transaction ring once, with the first call's
    arguments (e.g. one delivery task per webhook stream). A rolled-back savepoint does not
    forget what was scheduled inside it: a spare doorbell is harmless, a task re-reads its row.
    """
    pending: dict[Hashable, _Doorbell] = session.info.setdefault(_AFTER_COMMIT, {})
    key = dedupe_key if dedupe_key is not None else ("unique", next(_unique))
    pending.setdefault(key, _Doorbell(task_name, args, queue, countdown))


@event.listens_for(Session, "after_commit")
def _ring(session: Session) -> None:
    pending: dict[Hashable, _Doorbell] = session.info.pop(_AFTER_COMMIT, None) or {}
    for bell in pending.values():
        enqueue(bell.task_name, args=bell.args, queue=bell.queue, countdown=bell.countdown)


@event.listens_for(Session, "after_transaction_end")
def _forget(session: Session, transaction: SessionTransaction) -> None:
    # After a commit `_ring` has emptied the list already; after a rollback, or a session
    # closed mid-transaction, what was scheduled belongs to work that never happened.
    if transaction.parent is None:
        session.info.pop(_AFTER_COMMIT, None)


def _ask_worker(task: str, *, args: list[Any], pointer: str) -> dict[str, Any]:
    """Run `task` on a worker (the API has no PyTorch) and wait for its answer; a ValueError
    the worker raises is the caller's bad input, at `pointer`."""
    from app.core.errors import ProblemError

    try:
        result = get_celery().send_task(task, args=args, queue=TRAINING_QUEUE)
        answer: dict[str, Any] = result.get(timeout=PREDICT_TIMEOUT_SECONDS)
        return answer
    except CeleryTimeout as exc:
        raise ProblemError(
            503, "No worker answered the prediction in time", slug="workers-unavailable"
        ) from exc
    except ValueError as exc:
        raise ProblemError(
            422, str(exc), errors=[{"pointer": pointer, "detail": str(exc)}]
        ) from exc


def predict_remotely(
    *, model_id: uuid.UUID, version_id: uuid.UUID, features: list[list[float]]
) -> dict[str, Any]:
    """A prediction from a worker."""
    return _ask_worker(
        PREDICT, args=[str(model_id), str(version_id), features], pointer="#/features"
    )


def generate_remotely(
    *, model_id: uuid.UUID, version_id: uuid.UUID, prompts: list[str], max_new_tokens: int
) -> dict[str, Any]:
    """A language model's greedy completions of `prompts`, from a worker."""
    return _ask_worker(
        GENERATE,
        args=[str(model_id), str(version_id), prompts, max_new_tokens],
        pointer="#/prompts",
    )


def broker_reachable(timeout: float = 2.0) -> bool:
    settings = get_settings()
    if settings.broker_url == EMBEDDED_BROKER:
        return (settings.broker_dir / "queue").is_dir()
    try:
        with get_celery().connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
        return True
    except Exception:
        return False
