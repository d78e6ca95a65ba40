from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse

from app.audit import service as audit_service
from app.audit.models import ErasureCertificate
from app.audit.schemas import AuditEventOut, CertificateOut
from app.core.auth import require
from app.core.broker import PLAN_ERASURE_REQUEST, enqueue
from app.core.config import get_settings
from app.core.db import SessionDep
from app.core.errors import ProblemError
from app.core.idempotency import idempotent_json
from app.core.pagination import DEFAULT_LIMIT, MAX_LIMIT
from app.core.scopes import Scope
from app.erasure import service
from app.erasure.enums import RequestStatus
from app.erasure.schemas import (
    DenyBody,
    ErasureRequestCreate,
    ErasureRequestOut,
    ErasureRequestPage,
    ExtendBody,
)
from app.webhooks.service import check_callback_url

router = APIRouter(prefix="/v1/erasure-requests", tags=["erasure"])
Writer = require(Scope.REQUESTS_WRITE)
Reader = require(Scope.REQUESTS_READ)
Admin = require(Scope.ADMIN)
IdempotencyKeyHeader = Annotated[str | None, Header(alias="Idempotency-Key")]


def _dump(request: object) -> dict:
    return service.to_out(request).model_dump(mode="json")  # type: ignore[arg-type]


@router.post("", status_code=202, response_model=ErasureRequestOut)
def submit(
    body: ErasureRequestCreate,
    request: Request,
    session: SessionDep,
    client: Writer,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    settings = get_settings()
    if body.callback_url is not None:
        check_callback_url(str(body.callback_url), pointer="#/callback_url")
    created: list[uuid.UUID] = []

    def work() -> tuple[int, dict]:
        erasure = service.create_request(
            session,
            client=client,
            pepper=settings.pepper_bytes(),
            identities=body.identities,
            reference=body.reference,
            reason=body.reason,
            callback_url=str(body.callback_url) if body.callback_url else None,
            due_months=settings.due_months,
        )
        created.append(erasure.id)
        return 202, _dump(erasure)

    response = idempotent_json(
        session,
        request=request,
        client_id=client.id,
        key=idempotency_key,
        body=body,
        work=work,
    )
    if created and not client.requires_approval:
        enqueue(PLAN_ERASURE_REQUEST, args=[str(created[0])])
    return response


@router.get("", response_model=ErasureRequestPage)
def list_requests(
    session: SessionDep,
    client: Reader,
    status: RequestStatus | None = None,
    overdue: bool | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> ErasureRequestPage:
    rows, next_cursor = service.list_requests(
        session, client=client, status=status, overdue=overdue, cursor=cursor, limit=limit
    )
    jobs = service.job_summaries(session, request_ids=[r.id for r in rows])
    return ErasureRequestPage(
        items=[service.to_out(r, jobs=jobs.get(r.id)) for r in rows], next_cursor=next_cursor
    )


@router.get("/{request_id}", response_model=ErasureRequestOut)
def get_request(request_id: uuid.UUID, session: SessionDep, client: Reader) -> ErasureRequestOut:
    erasure = service.get_request(session, client=client, request_id=request_id)
    jobs = service.job_summaries(session, request_ids=[erasure.id])
    return service.to_out(erasure, jobs=jobs.get(erasure.id))


@router.get("/{request_id}/events", response_model=list[AuditEventOut])
def request_events(
    request_id: uuid.UUID, session: SessionDep, client: Reader
) -> list[AuditEventOut]:
    erasure = service.get_request(session, client=client, request_id=request_id)
    events = audit_service.list_events(
        session, entity_type="erasure_request", entity_id=str(erasure.id), limit=10_000
    )
    return [AuditEventOut.model_validate(e) for e in events]


@router.get("/{request_id}/certificate", response_model=CertificateOut)
def certificate(request_id: uuid.UUID, session: SessionDep, client: Reader) -> CertificateOut:
    erasure = service.get_request(session, client=client, request_id=request_id)
    issued = session.get(ErasureCertificate, erasure.id)
    if issued is None:
        raise ProblemError(
            409,
            f"The certificate is issued when the request completes; it is `{erasure.status}`",
            slug="certificate-not-ready",
            current_status=erasure.status,
        )
    return CertificateOut(
        request_id=str(erasure.id), jws=issued.jws, claims=issued.claims, kid=issued.kid
    )


@router.post("/{request_id}/cancel", response_model=ErasureRequestOut)
def cancel(request_id: uuid.UUID, session: SessionDep, client: Writer) -> dict:
    erasure = service.cancel(session, client=client, request_id=request_id)
    session.commit()
    return _dump(erasure)


@router.post("/{request_id}/approve", response_model=ErasureRequestOut)
def approve(request_id: uuid.UUID, session: SessionDep, client: Admin) -> dict:
    erasure = service.approve(session, client=client, request_id=request_id)
    session.commit()
    enqueue(PLAN_ERASURE_REQUEST, args=[str(erasure.id)])
    return _dump(erasure)


@router.post("/{request_id}/deny", response_model=ErasureRequestOut)
def deny(request_id: uuid.UUID, body: DenyBody, session: SessionDep, client: Admin) -> dict:
    erasure = service.deny(session, client=client, request_id=request_id, reason=body.reason)
    session.commit()
    return _dump(erasure)


@router.post("/{request_id}/retry", response_model=ErasureRequestOut)
def retry(request_id: uuid.UUID, session: SessionDep, client: Admin) -> dict:
    erasure = service.retry(session, client=client, request_id=request_id)
    session.commit()
    enqueue(PLAN_ERASURE_REQUEST, args=[str(erasure.id)])
    return _dump(erasure)


@router.post("/{request_id}/extend", response_model=ErasureRequestOut)
def extend(request_id: uuid.UUID, body: ExtendBody, session: SessionDep, client: Admin) -> dict:
    erasure = service.extend_due(
        session, client=client, request_id=request_id, months=body.months, reason=body.reason
    )
    session.commit()
    return _dump(erasure)
