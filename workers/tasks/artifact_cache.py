"""Every worker's artifact cache answers two broadcast commands, evict these keys and sweep,
which run in the worker's main process (the cache is on disk, shared by its pool); beat asks
for a sweep everywhere on a schedule."""

from __future__ import annotations

from typing import Any

import structlog
from celery.worker.control import control_command

from app.core.broker import EVICT_ARTIFACTS, SWEEP_ARTIFACT_CACHE, SWEEP_ARTIFACT_CACHES
from workers.celery_app import celery_app
from workers.pipeline.cache_eviction import sweep_every_cache
from workers.pipeline.storage import artifact_cache

log = structlog.get_logger(__name__)


@control_command(name=EVICT_ARTIFACTS, args=[("keys", list)], signature="<keys>")
def evict_artifacts(state: Any, keys: list[str]) -> dict[str, int]:
    cache = artifact_cache()
    evicted = cache.evict(keys=list(keys)) if cache is not None else 0
    log.info("artifact_cache_evicted", keys=len(keys), evicted=evicted)
    return {"evicted": evicted}


@control_command(name=SWEEP_ARTIFACT_CACHE)
def sweep_artifact_cache(state: Any) -> dict[str, int]:
    cache = artifact_cache()
    return {"removed": cache.sweep() if cache is not None else 0}


@celery_app.task(name=SWEEP_ARTIFACT_CACHES)
def sweep_artifact_caches() -> None:
    sweep_every_cache()
