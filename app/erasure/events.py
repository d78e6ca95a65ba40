"""What the rest of the world hears of an erasure request's transitions.

`app.erasure.lifecycle` calls `transitioned` for every status a request enters, in the
transition's transaction. It publishes `erasure_request.<status>` through the webhook outbox
(the client's endpoints and the request's own `callback_url`, as one message), then calls the
listeners other packages registered with `on_transition` (OpenDSR's status callbacks), so that
they act in the same transaction without this domain importing them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from app.core.db import utcnow
from app.erasure.enums import RequestStatus
from app.erasure.models import ErasureRequest
from app.webhooks import outbox
from app.webhooks.events import register_event_types

EVENT_PREFIX = "erasure_request."


def event_type(status: RequestStatus) -> str:
    # A fallback to retraining arrives as `running`, an admin retry as `received`.
    return f"{EVENT_PREFIX}{status.value}"


register_event_types(*(event_type(status) for status in RequestStatus))


class TransitionListener(Protocol):
    def __call__(
        self,
        session: Session,
        *,
        request: ErasureRequest,
        previous_status: RequestStatus | None,
    ) -> None: ...


_listeners: list[TransitionListener] = []


def on_transition(listener: TransitionListener) -> TransitionListener:
    """Call `listener` after every transition, in its transaction (registering twice is
    harmless). A listener that raises rolls the transition back."""
    if listener not in _listeners:
        _listeners.append(listener)
    return listener


def listeners() -> tuple[TransitionListener, ...]:
    return tuple(_listeners)


def request_event_data(
    request: ErasureRequest, *, previous_status: RequestStatus | None
) -> dict[str, Any]:
    """The thin payload: ids, status and links, never an identity."""
    base = f"/v1/erasure-requests/{request.id}"
    data: dict[str, Any] = {
        "id": str(request.id),
        "object": "erasure_request",
        "status": RequestStatus(request.status).value,
        "previous_status": previous_status.value if previous_status is not None else None,
        "due_at": _iso(request.due_at),
        "links": {"self": base, "events": f"{base}/events", "certificate": f"{base}/certificate"},
    }
    if request.mitigated_at is not None:  # the person no longer exposed; exact erasure pending
        data["mitigated_at"] = _iso(request.mitigated_at)
        if request.exact_expected_at is not None:
            data["exact_expected_at"] = _iso(request.exact_expected_at)
    return data


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def transitioned(session: Session, *, request: ErasureRequest, previous_status: str | None) -> None:
    """Tell subscribers that `request` entered its current status (`previous_status` is None
    for a new request)."""
    previous = RequestStatus(previous_status) if previous_status is not None else None
    outbox.publish(
        session,
        client_id=request.client_id,
        event_type=event_type(RequestStatus(request.status)),
        data=request_event_data(request, previous_status=previous),
        subject=f"erasure_request:{request.id}",
        occurred_at=request.updated_at or utcnow(),
        erasure_request_id=request.id,
        direct_urls=[request.callback_url] if request.callback_url else (),
    )
    for listener in _listeners:
        listener(session, request=request, previous_status=previous)
