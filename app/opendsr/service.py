"""OpenDSR 2.0 requests, carried out by the erasure service (create_request, cancel), which
also decides whether a request waits for approval or is planned."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.auth import ApiClient
from app.core.db import utcnow
from app.core.errors import NotFound, ProblemError
from app.erasure import service as erasure_service
from app.erasure.models import ErasureRequest
from app.opendsr import mapping
from app.opendsr.callbacks import queue_status_callbacks, rfc3339, status_body
from app.opendsr.models import OpenDsrRequest
from app.opendsr.schemas import OpenDsrRequestIn
from app.webhooks.service import check_callback_url


def discovery(*, certificate_url: str) -> dict[str, Any]:
    return {
        "api_version": mapping.API_VERSION,
        "supported_identities": [
            {"identity_type": kind, "identity_format": form}
            for kind in mapping.SUPPORTED_IDENTITY_TYPES
            for form in mapping.SUPPORTED_IDENTITY_FORMATS
        ],
        "supported_subject_request_types": list(mapping.SUBJECT_REQUEST_TYPES),
        "processor_certificate": certificate_url,
    }


def _check_callback_urls(urls: list[str]) -> None:
    """Refuse callbacks to private addresses. A host that does not resolve now is accepted:
    refusing would lose the erasure request itself, and each attempt checks again."""
    for index, url in enumerate(urls):
        check_callback_url(url, pointer=f"#/status_callback_urls/{index}", status=400)


def find(
    session: Session, *, client: ApiClient, subject_request_id: uuid.UUID
) -> tuple[OpenDsrRequest, ErasureRequest]:
    row = session.scalar(
        select(OpenDsrRequest).where(
            OpenDsrRequest.client_id == client.id,
            OpenDsrRequest.subject_request_id == subject_request_id,
        )
    )
    if row is None:
        raise NotFound("OpenDSR request")
    request = erasure_service.get_request(session, client=client, request_id=row.erasure_request_id)
    return row, request


def submit(
    session: Session,
    *,
    client: ApiClient,
    body: OpenDsrRequestIn,
    fingerprint: str,
) -> tuple[OpenDsrRequest, ErasureRequest]:
    """Create the erasure request, or return the one this `subject_request_id` already made."""
    existing = session.scalar(
        select(OpenDsrRequest).where(
            OpenDsrRequest.client_id == client.id,
            OpenDsrRequest.subject_request_id == body.subject_request_id,
        )
    )
    if existing is not None:
        if existing.request_fingerprint != fingerprint:
            raise ProblemError(
                400,
                "This subject_request_id was already used with a different request",
                slug="idempotency-mismatch",
                errors=[{"pointer": "#/subject_request_id", "detail": "already used"}],
            )
        _, request = find(session, client=client, subject_request_id=body.subject_request_id)
        return existing, request
    callback_urls = [str(url) for url in body.status_callback_urls]
    _check_callback_urls(callback_urls)
    request = erasure_service.create_request(
        session,
        client=client,
        identities=[identity.to_identity() for identity in body.subject_identities],
        reference=f"opendsr:{body.subject_request_id}",
        reason=f"OpenDSR {body.subject_request_type} ({body.regulation})",
        callback_url=None,
    )
    row = OpenDsrRequest(
        client_id=client.id,
        subject_request_id=body.subject_request_id,
        erasure_request_id=request.id,
        regulation=body.regulation,
        subject_request_type=body.subject_request_type,
        submitted_time=body.submitted_time,
        api_version=body.api_version,
        status_callback_urls=callback_urls,
        request_fingerprint=fingerprint,
        received_time=request.received_at,
    )
    session.add(row)
    session.flush()
    queue_status_callbacks(session, request=request, previous_status=None, row=row)
    return row, request


def cancel(
    session: Session, *, client: ApiClient, subject_request_id: uuid.UUID
) -> tuple[OpenDsrRequest, datetime]:
    """Cancel while `pending`, as the specification allows; later, a 400 naming the status."""
    row, _ = find(session, client=client, subject_request_id=subject_request_id)
    request = erasure_service.get_request(
        session, client=client, request_id=row.erasure_request_id, for_update=True
    )
    status = mapping.request_status(request.status)
    if status != mapping.PENDING:
        raise ProblemError(
            400,
            f"The request is `{status}`; only `pending` requests can be cancelled",
            slug="not-cancellable",
            errors=[{"parameter": "subject_request_id", "detail": f"request_status is {status}"}],
        )
    erasure_service.cancel(session, client=client, request_id=request.id)
    return row, utcnow()


def creation_body(row: OpenDsrRequest, request: ErasureRequest) -> dict[str, Any]:
    # `encoded_request` is left out on purpose: it would echo identity values, and replays
    # of this response are stored.
    return {
        "controller_id": str(row.client_id),
        "expected_completion_time": rfc3339(request.due_at),
        "received_time": rfc3339(row.received_time),
        "subject_request_id": str(row.subject_request_id),
        "api_version": mapping.API_VERSION,
    }


def status(row: OpenDsrRequest, request: ErasureRequest) -> dict[str, Any]:
    return status_body(row, request)


def cancellation_body(row: OpenDsrRequest, *, received_time: datetime) -> dict[str, Any]:
    return {
        "controller_id": str(row.client_id),
        "subject_request_id": str(row.subject_request_id),
        "received_time": rfc3339(received_time),
        "api_version": mapping.API_VERSION,
    }
