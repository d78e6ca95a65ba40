"""Purged artifacts leave every worker's cache: this worker's at once, the others' by a
broadcast, and by their periodic sweep should it not reach them."""

from __future__ import annotations

from app.core.broker import EVICT_ARTIFACTS, SWEEP_ARTIFACT_CACHE, broadcast
from workers.pipeline.storage import artifact_cache


def evict_cached_copies(*, keys: list[str]) -> None:
    cache = artifact_cache()
    if cache is None:
        return
    cache.evict(keys=keys)
    broadcast(EVICT_ARTIFACTS, arguments={"keys": keys})


def sweep_every_cache() -> None:
    """Have every worker drop cached copies whose object is gone; this one sweeps its own too,
    in case the broker cannot broadcast."""
    cache = artifact_cache()
    if cache is None:
        return
    cache.sweep()
    broadcast(SWEEP_ARTIFACT_CACHE, arguments={})
