"""OpenDSR status callbacks, queued in the transition's transaction like any other webhook.

A callback goes to every `status_callback_urls` entry when the OpenDSR status changes (several
Lethe statuses share one OpenDSR status), and once when the request is received. Importing this
module subscribes it to erasure transitions (`app.wiring` does, in every process).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.config import get_settings
from app.erasure.enums import RequestStatus
from app.erasure.events import on_transition
from app.erasure.models import ErasureRequest
from app.opendsr import mapping
from app.opendsr.models import OpenDsrRequest
from app.webhooks.events import new_message_id
from app.webhooks.models import Target
from app.webhooks.queue import add_delivery

CALLBACK_EVENT = "opendsr.status"


def rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def lethe_extension(request: ErasureRequest) -> dict[str, Any]:
    """Lethe's details under its processor domain; a denial says so here."""
    details: dict[str, Any] = {
        "erasure_request_id": str(request.id),
        "lethe_status": request.status,
    }
    if request.mitigated_at is not None:
        details["mitigated_at"] = rfc3339(request.mitigated_at)
    if request.exact_expected_at is not None and request.status == RequestStatus.MITIGATED:
        details["exact_expected_at"] = rfc3339(request.exact_expected_at)
    if request.status == RequestStatus.DENIED:
        details["denied"] = True
        details["denial_reason"] = request.status_reason
    return {get_settings().opendsr_processor_domain: details}


def status_body(row: OpenDsrRequest, request: ErasureRequest) -> dict[str, Any]:
    return {
        "controller_id": str(row.client_id),
        "expected_completion_time": rfc3339(request.due_at),
        "subject_request_id": str(row.subject_request_id),
        "request_status": mapping.request_status(request.status),
        "api_version": mapping.API_VERSION,
        "extensions": lethe_extension(request),
    }


def queue_status_callbacks(
    session: Session,
    *,
    request: ErasureRequest,
    previous_status: str | None,
    row: OpenDsrRequest | None = None,
) -> None:
    if row is None:
        row = session.scalar(
            select(OpenDsrRequest).where(OpenDsrRequest.erasure_request_id == request.id)
        )
    if row is None or not row.status_callback_urls:
        return
    status = mapping.request_status(request.status)
    if previous_status is not None and mapping.request_status(previous_status) == status:
        return
    message_id = new_message_id()
    for url in row.status_callback_urls:
        add_delivery(
            session,
            message_id=message_id,
            client_id=row.client_id,
            target=Target.OPENDSR,
            url=url,
            event_type=CALLBACK_EVENT,
            payload={**status_body(row, request), "status_callback_url": url},
            subject=f"erasure_request:{request.id}",
            erasure_request_id=request.id,
        )


@on_transition
def _on_transition(
    session: Session, *, request: ErasureRequest, previous_status: RequestStatus | None
) -> None:
    # A new request has no OpenDSR row yet: `service.submit` queues its first callback once it
    # has created one.
    if previous_status is not None:
        queue_status_callbacks(session, request=request, previous_status=previous_status)
