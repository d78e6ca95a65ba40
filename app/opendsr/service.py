"""OpenDSR 2.0 requests, carried out by the erasure service (create_request, cancel), which
also decides whether a request waits for approval or is planned."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.auth import ApiClient
from app.core.config import get_settings
from app.core.db import utcnow
from app.core.errors import NotFound, ProblemError
from app.core.idempotency import Idempotency
from app.erasure import service as erasure_service
from app.erasure.models import ErasureRequest
from app.opendsr import mapping
from app.opendsr.callbacks import queue_status_callbacks, rfc3339, status_body
from app.opendsr.models import OpenDsrRequest
from app.opendsr.schemas import OpenDsrRequestIn
from app.webhooks.service import check_callback_url

CERTIFICATE_PATH = "/opendsr/v1/certificate.pem"
REUSED = "This subject_request_id was already used with a different request"


def certificate_url() -> str:
    """Where controllers fetch our certificate: from settings, never from the request (its
    `Host` header is the client's to choose, and the URL is signed)."""
    return get_settings().resolved_public_base_url + CERTIFICATE_PATH


def discovery() -> dict[str, Any]:
    return {
        "api_version": mapping.API_VERSION,
        "supported_identities": [
            {"identity_type": kind, "identity_format": form}
            for kind in mapping.SUPPORTED_IDENTITY_TYPES
            for form in mapping.SUPPORTED_IDENTITY_FORMATS
        ],
        "supported_subject_request_types": list(mapping.SUBJECT_REQUEST_TYPES),
        "processor_certificate": certificate_url(),
    }


def _check_callback_urls(urls: list[str]) -> None:
    """Refuse callbacks to private addresses. A host that does not resolve now is accepted:
    refusing would lose the erasure request itself, and each attempt checks again."""
    for index, url in enumerate(urls):
        check_callback_url(url, pointer=f"#/status_callback_urls/{index}", status=400)


def find(
    session: Session,
    *,
    client: ApiClient,
    subject_request_id: uuid.UUID,
    controller_id: uuid.UUID | None = None,
) -> tuple[OpenDsrRequest, ErasureRequest]:
    """A client's request by its `subject_request_id`; an admin's, any client's (narrowed by
    `controller_id` when several controllers used the same id)."""
    query = select(OpenDsrRequest).where(OpenDsrRequest.subject_request_id == subject_request_id)
    if not client.is_admin:
        query = query.where(OpenDsrRequest.client_id == client.id)
    if controller_id is not None:
        query = query.where(OpenDsrRequest.client_id == controller_id)
    rows = list(session.scalars(query.order_by(OpenDsrRequest.received_time).limit(2)))
    if not rows:
        raise NotFound("OpenDSR request")
    if len(rows) > 1:
        raise ProblemError(
            409,
            "Several controllers used this subject_request_id; name one with `controller_id`",
            slug="ambiguous-subject-request-id",
            errors=[{"parameter": "controller_id", "in": "query", "detail": "required here"}],
        )
    row = rows[0]
    request = erasure_service.get_request(session, client=client, request_id=row.erasure_request_id)
    return row, request


def _reused(exc: ProblemError) -> ProblemError:
    """The `Idempotency-Key` machinery's errors, in the words of an OpenDSR client, which sends
    no such header: its key is the `subject_request_id`."""
    pointer = "#/subject_request_id"
    if exc.slug == "idempotency-mismatch" and exc.status == 422:
        return ProblemError(
            400,
            REUSED,
            slug="subject-request-id-reused",
            errors=[{"pointer": pointer, "detail": "already used with a different request"}],
        )
    if exc.slug == "idempotency-conflict":
        return ProblemError(
            409,
            "A request with this subject_request_id is still being received; retry shortly",
            slug="subject-request-in-progress",
            errors=[{"pointer": pointer, "detail": "being received"}],
            headers=exc.headers,
        )
    return exc


def submit_once(
    session: Session, *, client: ApiClient, body: OpenDsrRequestIn, once: Idempotency
) -> tuple[int, bytes]:
    """`submit` at most once per `subject_request_id`: the same body again gets the first
    response (status and exact bytes), another body a 400."""
    payload = body.model_dump(mode="json")

    def call() -> dict[str, Any]:
        row, erasure = submit(
            session, client=client, body=body, fingerprint=once.fingerprint(payload)
        )
        return creation_body(row, erasure)

    try:
        response = once.run(201, call, body=payload)
    except ProblemError as exc:
        raise _reused(exc) from None
    return response.status_code, bytes(response.body)


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
                REUSED,
                slug="subject-request-id-reused",
                errors=[
                    {
                        "pointer": "#/subject_request_id",
                        "detail": "already used with a different request",
                    }
                ],
            )
        request = erasure_service.get_request(
            session, client=client, request_id=existing.erasure_request_id
        )
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
    session: Session,
    *,
    client: ApiClient,
    subject_request_id: uuid.UUID,
    controller_id: uuid.UUID | None = None,
) -> tuple[OpenDsrRequest, datetime]:
    """Cancel while `pending`, as the specification allows; later, a 400 naming the status."""
    row, _ = find(
        session, client=client, subject_request_id=subject_request_id, controller_id=controller_id
    )
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
