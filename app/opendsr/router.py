"""OpenDSR 2.0 routes. Requests use the same bearer API keys as /v1 (`requests:write` to
submit and cancel, `requests:read` for status); discovery and the certificate are public, since
controllers fetch them to verify our signatures. Successful responses carry
`X-OpenDSR-Processor-Domain` and `X-OpenDSR-Signature` over the exact body bytes."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

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
AMBIGUOUS = problems(
    Answer(409, "An admin key named a subject_request_id that several controllers used")
)
ControllerId = Annotated[
    uuid.UUID | None,
    Query(
        description="Admin keys: the controller whose request this is, when several "
        "controllers used the same `subject_request_id`."
    ),
]


def signed_json(status: int, body: dict[str, Any] | bytes) -> Response:
    raw = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
    return Response(
        raw, status_code=status, media_type="application/json", headers=signed_headers(raw)
    )


@router.get("/discovery", response_model=Discovery, responses=signed(200))
def discovery() -> Response:
    """What this processor supports; `processor_certificate` is built from
    `LETHE_PUBLIC_BASE_URL` (or the processor domain), never from the request."""
    return signed_json(200, service.discovery())


class PemResponse(Response):
    media_type = PEM


@router.get(
    service.CERTIFICATE_PATH.removeprefix(router.prefix),
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
    status, raw = service.submit_once(session, client=client, body=body, once=once)
    return signed_json(status, raw)


@router.get(
    "/requests/{subject_request_id}",
    response_model=RequestStatusOut,
    responses=signed(200) | AMBIGUOUS,
)
def request_status(
    subject_request_id: uuid.UUID,
    session: SessionDep,
    client: RequestsReader,
    controller_id: ControllerId = None,
) -> Response:
    """The request's status. A key sees its own client's requests; an admin key every
    client's."""
    row, erasure = service.find(
        session,
        client=client,
        subject_request_id=subject_request_id,
        controller_id=controller_id,
    )
    return signed_json(200, service.status(row, erasure))


@router.delete(
    "/requests/{subject_request_id}",
    status_code=202,
    response_model=RequestCancelled,
    responses=signed(202) | AMBIGUOUS,
)
def cancel(
    subject_request_id: uuid.UUID,
    session: SessionDep,
    client: RequestsWriter,
    controller_id: ControllerId = None,
) -> Response:
    row, received_time = service.cancel(
        session, client=client, subject_request_id=subject_request_id, controller_id=controller_id
    )
    session.commit()
    return signed_json(202, service.cancellation_body(row, received_time=received_time))
