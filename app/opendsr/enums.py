"""OpenDSR 2.0's own request statuses (`request_status`), which Lethe's statuses map onto."""

from __future__ import annotations

from enum import StrEnum


class OpenDsrStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
