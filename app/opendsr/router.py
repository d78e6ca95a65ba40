"""OpenDSR 2.0 routes. Requests use the same bearer API keys as /v1 (`requests:write` to
submit and cancel, `requests:read` for status); discovery and the certificate are public, since
controllers fetch them to verify our signatures. Successful responses carry
`X-OpenDSR-Processor-Domain` and `X-OpenDSR-Signature` over the exact body bytes."""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi import APIRouter, Request, Response

from app.core.auth import RequestsReader, RequestsWriter
from app.core.db import SessionDep
from app.core.idempotency import Idempotency
from app.core.problems import Answer, problems
from app.opendsr import service
from app.opendsr.documents import (
    Discovery,
    RequestCancelled,
    RequestReceived,
    RequestStatusOut,
    signed,
)
from app.opendsr.errors import OpenDsrRoute
from app.opendsr.schemas import OpenDsrRequestIn
from app.opendsr.signing import certificate_pem, signed_headers

router = APIRouter(prefix="/opendsr/v1", tags=["opendsr"], route_class=OpenDsrRoute)
PEM = "application/x-pem-file"
# A `subject_request_id` is its request's idempotency key.
REUSED = problems(Answer(409, "A request with this subject_request_id is still being received"))


def signed_json(status: int, body: dict[str, Any] | bytes) -> Response:
    raw = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
    return Response(
        raw, status_code=status, media_type="application/json", headers=signed_headers(raw)
    )


@router.get("/discovery", response_model=Discovery, responses=signed(200))
def discovery(request: Request) -> Response:
    certificate_url = str(request.url_for("opendsr_certificate"))
    return signed_json(200, service.discovery(certificate_url=certificate_url))


class PemResponse(Response):
    media_type = PEM


@router.get(
    "/certificate.pem",
    name="opendsr_certificate",
    response_class=PemResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def certificate(request: Request) -> Response:
    """The X.509 certificate whose key signs OpenDSR responses and callbacks, as PEM;
    `text/plain` for a client that accepts that and not `application/x-pem-file`."""
    accept = request.headers.get("accept", "")
    plain = "text/plain" in accept and PEM not in accept
    return Response(certificate_pem(), media_type="text/plain" if plain else PEM)


@router.post(
    "/requests",
    status_code=201,
    response_model=RequestReceived,
    responses=signed(201) | REUSED,
)
def submit(
    body: OpenDsrRequestIn, request: Request, session: SessionDep, client: RequestsWriter
) -> Response:
    # The specification makes `subject_request_id` the idempotency key.
    once = Idempotency(
        session=session,
        request=request,
        client_id=client.id,
        key=f"opendsr:{body.subject_request_id}",
    )
    payload = body.model_dump(mode="json")

    def call() -> dict[str, Any]:
        row, erasure = service.submit(
            session, client=client, body=body, fingerprint=once.fingerprint(payload)
        )
        return service.creation_body(row, erasure)

    response = once.run(201, call, body=payload)
    return signed_json(response.status_code, bytes(response.body))


@router.get(
    "/requests/{subject_request_id}", response_model=RequestStatusOut, responses=signed(200)
)
def request_status(
    subject_request_id: uuid.UUID, session: SessionDep, client: RequestsReader
) -> Response:
    row, erasure = service.find(session, client=client, subject_request_id=subject_request_id)
    return signed_json(200, service.status(row, erasure))


@router.delete(
    "/requests/{subject_request_id}",
    status_code=202,
    response_model=RequestCancelled,
    responses=signed(202),
)
def cancel(subject_request_id: uuid.UUID, session: SessionDep, client: RequestsWriter) -> Response:
    row, received_time = service.cancel(
        session, client=client, subject_request_id=subject_request_id
    )
    session.commit()
    return signed_json(202, service.cancellation_body(row, received_time=received_time))
