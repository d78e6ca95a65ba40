"""A model's strategy and a version's status. A leaf module: anything may import it."""

from __future__ import annotations

from enum import StrEnum


class Strategy(StrEnum):
    SISA = "sisa"
    APPROXIMATE = "approximate"
    RETRAIN = "retrain"


class Finalize(StrEnum):
    """What closes an erasure request for an approximate model."""

    EXACT = "exact"  # an exact retrain, scheduled and batched; approximate is a mitigation
    APPROXIMATE = "approximate"  # the approximate result itself, certified as approximate


class VersionStatus(StrEnum):
    ACTIVE = "active"
    SUPERSEDED = "superseded"
    PURGED = "purged"
    # A training run's version much worse than the active one: kept with its figures, not
    # activated, until an admin releases (activates) or discards it (`app.registry.holds`).
    HELD = "held"
    DISCARDED = "discarded"  # a held version an admin refused; its files go through the outbox


class PurgeKind(StrEnum):
    CHECKPOINT = "checkpoint"  # a SISA slice checkpoint (manifest and state)
    ARTIFACT = "artifact"  # a version's weights or record-id list
    DATABASE = "database"  # the storage scrub after erased rows were deleted
