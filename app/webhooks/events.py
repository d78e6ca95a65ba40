"""Event types and their thin payloads: ids, status and links, never identity values."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from app.erasure.models import ErasureRequest

# Every status an erasure request can enter is an event type; fallbacks and retries arrive as
# the status they lead to (`running`, `received`). Kept as strings: this module is imported by
# the lifecycle and must not import it back.
REQUEST_STATUSES = (
    "received",
    "pending_approval",
    "approved",
    "denied",
    "planning",
    "planned",
    "running",
    "verifying",
    "completed",
    "failed",
    "cancelled",
)
REQUEST_EVENTS = frozenset(f"erasure_request.{status}" for status in REQUEST_STATUSES)
MODEL_EVENTS = frozenset({"model.version_activated"})
EVENT_TYPES = REQUEST_EVENTS | MODEL_EVENTS
ALL_EVENTS = "*"


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def message(*, event_type: str, occurred_at: datetime, data: dict[str, Any]) -> dict[str, Any]:
    """The body every subscriber receives: `{type, timestamp, data}`."""
    return {
        "type": event_type,
        "timestamp": occurred_at.isoformat().replace("+00:00", "Z"),
        "data": data,
    }


def request_event_data(request: ErasureRequest, *, previous_status: str | None) -> dict[str, Any]:
    base = f"/v1/erasure-requests/{request.id}"
    return {
        "id": str(request.id),
        "object": "erasure_request",
        "status": request.status,
        "previous_status": previous_status,
        "due_at": request.due_at.isoformat().replace("+00:00", "Z"),
        "links": {"self": base, "events": f"{base}/events", "certificate": f"{base}/certificate"},
    }


def subscribed(events: list[str], event_type: str) -> bool:
    return ALL_EVENTS in events or event_type in events
