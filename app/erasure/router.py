from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from app.audit.schemas import AuditEventOut, CertificateOut
from app.core.auth import AdminClient, RequestsReader, RequestsWriter
from app.core.db import SessionDep
from app.core.idempotency import Idempotent
from app.core.pagination import DEFAULT_LIMIT, MAX_LIMIT
from app.core.problems import Answer, ValidationProblem, problems
from app.core.validation import SafeText
from app.erasure import service
from app.erasure.debt import erasure_debt
from app.erasure.enums import RequestStatus
from app.erasure.models import ErasureRequest
from app.erasure.schemas import (
    DenyBody,
    ErasureRequestCreate,
    ErasureRequestOut,
    ErasureRequestPage,
    ExtendBody,
    ModelDebtOut,
    RequestConflict,
)

router = APIRouter(prefix="/v1/erasure-requests", tags=["erasure"])
debt_router = APIRouter(prefix="/v1/erasure-debt", tags=["erasure"])

# The request's status does not allow the action: the 409 names it.
NOT_NOW = problems(Answer(409, "The request's status does not allow this", RequestConflict))


def _dump(request: ErasureRequest) -> dict[str, Any]:
    return service.to_out(request).model_dump(mode="json")


def _committed(session: Session, request: ErasureRequest) -> dict[str, Any]:
    session.commit()
    return _dump(request)


@router.post("", status_code=202, response_model=ErasureRequestOut)
def submit(
    body: ErasureRequestCreate, session: SessionDep, client: RequestsWriter, once: Idempotent
) -> JSONResponse:
    def call() -> dict[str, Any]:
        return _dump(
            service.create_request(
                session,
                client=client,
                identities=body.identities,
                reference=body.reference,
                reason=body.reason,
                callback_url=str(body.callback_url) if body.callback_url else None,
            )
        )

    return once.run(202, call, body=body)


@router.get("", response_model=ErasureRequestPage)
def list_requests(
    session: SessionDep,
    client: RequestsReader,
    status: RequestStatus | None = None,
    overdue: bool | None = None,
    reference: Annotated[
        SafeText | None,
        Query(max_length=200, description="The caller's reference: find a request by it."),
    ] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> ErasureRequestPage:
    rows, next_cursor = service.list_requests(
        session,
        client=client,
        status=status,
        overdue=overdue,
        reference=reference,
        cursor=cursor,
        limit=limit,
    )
    jobs = service.job_summaries(session, request_ids=[r.id for r in rows])
    return ErasureRequestPage(
        items=[service.to_out(r, jobs=jobs.get(r.id)) for r in rows], next_cursor=next_cursor
    )


@router.get("/{request_id}", response_model=ErasureRequestOut)
def get_request(
    request_id: uuid.UUID, session: SessionDep, client: RequestsReader
) -> ErasureRequestOut:
    erasure = service.get_request(session, client=client, request_id=request_id)
    jobs = service.job_summaries(session, request_ids=[erasure.id])
    return service.to_out(erasure, jobs=jobs.get(erasure.id))


@router.get("/{request_id}/events", response_model=list[AuditEventOut])
def request_events(
    request_id: uuid.UUID, session: SessionDep, client: RequestsReader
) -> list[AuditEventOut]:
    events = service.request_events(session, client=client, request_id=request_id)
    return [AuditEventOut.model_validate(e) for e in events]


@router.get(
    "/{request_id}/certificate",
    response_model=CertificateOut,
    responses=problems(Answer(409, "The request is not completed yet", RequestConflict)),
)
def certificate(
    request_id: uuid.UUID, session: SessionDep, client: RequestsReader
) -> CertificateOut:
    issued = service.get_certificate(session, client=client, request_id=request_id)
    return CertificateOut.model_validate(
        {
            "request_id": str(issued.request_id),
            "jws": issued.jws,
            "claims": issued.claims,
            "kid": issued.kid,
        }
    )


@router.post("/{request_id}/cancel", response_model=ErasureRequestOut, responses=NOT_NOW)
def cancel(request_id: uuid.UUID, session: SessionDep, client: RequestsWriter) -> dict[str, Any]:
    return _committed(session, service.cancel(session, client=client, request_id=request_id))


@router.post("/{request_id}/approve", response_model=ErasureRequestOut, responses=NOT_NOW)
def approve(request_id: uuid.UUID, session: SessionDep, client: AdminClient) -> dict[str, Any]:
    return _committed(session, service.approve(session, client=client, request_id=request_id))


@router.post("/{request_id}/deny", response_model=ErasureRequestOut, responses=NOT_NOW)
def deny(
    request_id: uuid.UUID, body: DenyBody, session: SessionDep, client: AdminClient
) -> dict[str, Any]:
    erasure = service.deny(session, client=client, request_id=request_id, reason=body.reason)
    return _committed(session, erasure)


@router.post("/{request_id}/retry", response_model=ErasureRequestOut, responses=NOT_NOW)
def retry(request_id: uuid.UUID, session: SessionDep, client: AdminClient) -> dict[str, Any]:
    return _committed(session, service.retry(session, client=client, request_id=request_id))


@router.post(
    "/{request_id}/extend",
    response_model=ErasureRequestOut,
    responses=problems(
        Answer(409, "The request is no longer open", RequestConflict),
        Answer(422, "The extension exceeds what is left of two months", ValidationProblem),
    ),
)
def extend(
    request_id: uuid.UUID, body: ExtendBody, session: SessionDep, client: AdminClient
) -> dict[str, Any]:
    erasure = service.extend_due(
        session, client=client, request_id=request_id, months=body.months, reason=body.reason
    )
    return _committed(session, erasure)


@debt_router.get("", response_model=list[ModelDebtOut])
def debt(session: SessionDep, client: RequestsReader) -> list[ModelDebtOut]:
    """Per model, the requests mitigated (approximate) but not yet erased exactly, and when
    the exact retrain is scheduled."""
    return [ModelDebtOut.model_validate(d) for d in erasure_debt(session, client=client)]
