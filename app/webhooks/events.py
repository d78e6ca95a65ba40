"""The event catalog, and the body every subscriber receives.

The transport knows no publisher: each domain registers the event types it publishes
(`register_event_types`, at import of its events module; `app.wiring` imports them all), and
endpoints may subscribe only to registered types, or to `*`. Payloads are the publishers'
business, and must stay thin: ids, statuses and links, never identity values.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

ALL_EVENTS = "*"

# Insertion-ordered set of the registered types; written only while a process is wired.
_registered: dict[str, None] = {}


def register_event_types(*event_types: str) -> None:
    """Make `event_types` publishable and subscribable; registering one twice is harmless."""
    for event_type in event_types:
        if not event_type or event_type == ALL_EVENTS:
            raise ValueError(f"{event_type!r} cannot be an event type")
        _registered.setdefault(event_type, None)


def event_types() -> frozenset[str]:
    return frozenset(_registered)


def check_known(event_type: str) -> None:
    if event_type not in _registered:
        raise ValueError(f"unknown webhook event type {event_type!r}")


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def message(*, event_type: str, occurred_at: datetime, data: dict[str, Any]) -> dict[str, Any]:
    """The body every subscriber receives: `{type, timestamp, data}`."""
    return {
        "type": event_type,
        "timestamp": occurred_at.isoformat().replace("+00:00", "Z"),
        "data": data,
    }


def subscribed(events: list[str], event_type: str) -> bool:
    return ALL_EVENTS in events or event_type in events
