"""Erasure requests: intake, reading, and the admin and client actions.

Whether a request waits for an admin or goes straight to planning is decided here and only
here; planning is enqueued once the caller's transaction commits.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from dateutil.relativedelta import relativedelta
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.models import AuditEvent, ErasureCertificate
from app.audit.service import append_event, list_events
from app.core.auth import ApiClient
from app.core.broker import PLAN_ERASURE_REQUEST, enqueue_after_commit
from app.core.config import get_settings
from app.core.db import utcnow
from app.core.errors import NotFound, ProblemError
from app.core.pagination import newest_first
from app.erasure import lifecycle
from app.erasure.enums import RequestStatus
from app.erasure.lifecycle import OPEN
from app.erasure.models import ErasureRequest
from app.erasure.schemas import ErasureRequestOut, PlanOut, RequestLinks
from app.jobs import service as jobs_service
from app.jobs.schemas import JobSummary
from app.lineage.identity import IdentityType
from app.lineage.schemas import IdentityIn
from app.lineage.service import hash_identities
from app.webhooks.service import check_callback_url

MAX_EXTENSION_MONTHS = 2  # Art. 12(3): "extended by two further months where necessary"


def actor_of(client: ApiClient) -> str:
    return f"client:{client.id}"


def _plan_after_commit(session: Session, request: ErasureRequest) -> None:
    enqueue_after_commit(session, PLAN_ERASURE_REQUEST, args=[str(request.id)])


def create_request(
    session: Session,
    *,
    client: ApiClient,
    identities: list[IdentityIn],
    reference: str | None,
    reason: str | None,
    callback_url: str | None,
) -> ErasureRequest:
    """Receive a request; it waits for an admin if the client's policy says so, else its
    planning starts when the caller commits."""
    if callback_url is not None:
        check_callback_url(callback_url, pointer="#/callback_url")
    settings = get_settings()
    hashes = hash_identities(pepper=settings.pepper_bytes(), identities=identities)
    received_at = utcnow()
    request = ErasureRequest(
        client_id=client.id,
        reference=reference,
        reason=reason,
        callback_url=callback_url,
        identities=[{"type": h.type, "hash": h.hash} for h in dict.fromkeys(hashes)],
        received_at=received_at,
        due_at=received_at + relativedelta(months=settings.due_months),
        updated_at=received_at,
    )
    lifecycle.receive(session, request=request, actor=actor_of(client))
    if client.requires_approval:
        lifecycle.hold_for_approval(session, request=request, actor=actor_of(client))
    else:
        _plan_after_commit(session, request)
    return request


def get_request(
    session: Session, *, client: ApiClient, request_id: uuid.UUID, for_update: bool = False
) -> ErasureRequest:
    query = select(ErasureRequest).where(ErasureRequest.id == request_id)
    if for_update:
        query = query.with_for_update()
    request = session.scalar(query)
    if request is None or (not client.is_admin and request.client_id != client.id):
        raise NotFound("Erasure request")
    return request


def list_requests(
    session: Session,
    *,
    client: ApiClient,
    status: RequestStatus | None,
    overdue: bool | None,
    reference: str | None = None,
    cursor: str | None,
    limit: int,
) -> tuple[list[ErasureRequest], str | None]:
    query = select(ErasureRequest)
    if not client.is_admin:
        query = query.where(ErasureRequest.client_id == client.id)
    if status is not None:
        query = query.where(ErasureRequest.status == status.value)
    if reference is not None:
        query = query.where(ErasureRequest.reference == reference)
    if overdue is not None:
        late = (ErasureRequest.due_at < utcnow()) & ErasureRequest.status.in_(
            [s.value for s in OPEN]
        )
        query = query.where(late if overdue else ~late)
    return newest_first(
        session,
        query,
        at=ErasureRequest.received_at,
        id_=ErasureRequest.id,
        cursor=cursor,
        limit=limit,
    )


def cancel(session: Session, *, client: ApiClient, request_id: uuid.UUID) -> ErasureRequest:
    request = get_request(session, client=client, request_id=request_id, for_update=True)
    lifecycle.cancel(session, request=request, actor=actor_of(client))
    return request


def approve(session: Session, *, client: ApiClient, request_id: uuid.UUID) -> ErasureRequest:
    request = get_request(session, client=client, request_id=request_id, for_update=True)
    lifecycle.approve(session, request=request, actor=actor_of(client))
    _plan_after_commit(session, request)
    return request


def deny(
    session: Session, *, client: ApiClient, request_id: uuid.UUID, reason: str
) -> ErasureRequest:
    request = get_request(session, client=client, request_id=request_id, for_update=True)
    lifecycle.deny(session, request=request, actor=actor_of(client), reason=reason)
    return request


def retry(session: Session, *, client: ApiClient, request_id: uuid.UUID) -> ErasureRequest:
    request = get_request(session, client=client, request_id=request_id, for_update=True)
    lifecycle.retry(session, request=request, actor=actor_of(client))
    _plan_after_commit(session, request)
    return request


def request_events(
    session: Session, *, client: ApiClient, request_id: uuid.UUID
) -> list[AuditEvent]:
    """The request's audit trail, oldest first."""
    request = get_request(session, client=client, request_id=request_id)
    return list_events(
        session, entity_type="erasure_request", entity_id=str(request.id), limit=10_000
    )


def get_certificate(
    session: Session, *, client: ApiClient, request_id: uuid.UUID
) -> ErasureCertificate:
    """The signed certificate; a 409 naming the status until the request has completed."""
    request = get_request(session, client=client, request_id=request_id)
    issued = session.get(ErasureCertificate, request.id)
    if issued is None:
        raise ProblemError(
            409,
            f"The certificate is issued when the request completes; it is `{request.status}`",
            slug="certificate-not-ready",
            current_status=request.status,
        )
    return issued


def extend_due(
    session: Session, *, client: ApiClient, request_id: uuid.UUID, months: int, reason: str
) -> ErasureRequest:
    request = get_request(session, client=client, request_id=request_id, for_update=True)
    if RequestStatus(request.status) not in OPEN:
        raise ProblemError(
            409,
            f"The request is `{request.status}`; only open requests can be extended",
            slug="illegal-transition",
            current_status=request.status,
        )
    total = request.due_extension_months + months
    if total > MAX_EXTENSION_MONTHS:
        raise ProblemError(
            422,
            f"The due date can be extended by at most {MAX_EXTENSION_MONTHS} months in all; "
            f"{request.due_extension_months} already used",
            errors=[{"pointer": "#/months", "detail": "exceeds the remaining extension"}],
        )
    request.due_at = request.due_at + relativedelta(months=months)
    request.due_extension_months = total
    request.due_extension_reason = reason
    request.updated_at = utcnow()
    append_event(
        session,
        actor=actor_of(client),
        action="erasure_request.due_extended",
        entity_type="erasure_request",
        entity_id=str(request.id),
        data={"months": months, "reason": reason, "due_at": request.due_at.isoformat()},
    )
    return request


def is_overdue(request: ErasureRequest, *, now: datetime | None = None) -> bool:
    return RequestStatus(request.status) in OPEN and request.due_at < (now or utcnow())


def job_summaries(
    session: Session, *, request_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[JobSummary]]:
    """The unlearning jobs of each request, in one query."""
    return jobs_service.summaries_by_request(session, request_ids=request_ids)


def to_out(request: ErasureRequest, *, jobs: list[JobSummary] | None = None) -> ErasureRequestOut:
    base = f"/v1/erasure-requests/{request.id}"
    plan = PlanOut.model_validate(request.plan) if request.plan else None
    is_open = RequestStatus(request.status) in OPEN
    return ErasureRequestOut(
        id=request.id,
        status=RequestStatus(request.status),
        status_reason=request.status_reason,
        reference=request.reference,
        reason=request.reason,
        callback_url=request.callback_url,
        identity_types=sorted({IdentityType(i["type"]) for i in request.identities}),
        received_at=request.received_at,
        due_at=request.due_at,
        overdue=is_overdue(request),
        due_extension_months=request.due_extension_months,
        due_extension_reason=request.due_extension_reason,
        plan=plan,
        jobs=jobs or [],
        updated_at=request.updated_at,
        completed_at=request.completed_at,
        mitigated_at=request.mitigated_at,
        exact_expected_at=request.exact_expected_at if is_open else None,
        links=RequestLinks(self=base, events=f"{base}/events", certificate=f"{base}/certificate"),
    )
