"""A model's strategy and a version's status. A leaf module: anything may import it."""

from __future__ import annotations

from enum import StrEnum


class Strategy(StrEnum):
    SISA = "sisa"
    APPROXIMATE = "approximate"
    RETRAIN = "retrain"


class VersionStatus(StrEnum):
    ACTIVE = "active"
    SUPERSEDED = "superseded"
    PURGED = "purged"
