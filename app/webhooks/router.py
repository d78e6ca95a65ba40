from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from app.core.auth import RequestsReader, RequestsWriter
from app.core.db import SessionDep
from app.core.idempotency import Idempotent
from app.core.pagination import DEFAULT_LIMIT, MAX_LIMIT
from app.core.problems import Answer, problems
from app.webhooks import service
from app.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from app.webhooks.schemas import (
    DeliveryOut,
    DeliveryPage,
    EndpointCreate,
    EndpointOut,
    EndpointUpdate,
    EndpointWithSecret,
    RotateSecret,
    SigningKeyOut,
    WaitingOn,
)
from app.webhooks.signing import callback_public_key

router = APIRouter(tags=["webhooks"])
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
DeliveryId = Annotated[int, Path(ge=1, le=2**63 - 1)]
ENDPOINTS = "/v1/webhook-endpoints"
NOT_REDELIVERABLE = problems(Answer(409, "The delivery's endpoint is disabled or deleted"))


def _endpoint_out(endpoint: WebhookEndpoint, *, secret: str | None = None) -> dict[str, Any]:
    base = f"{ENDPOINTS}/{endpoint.id}"
    links = {"self": base, "deliveries": f"{base}/deliveries"}
    out = EndpointOut.model_validate(endpoint).model_copy(update={"links": links})
    if secret is not None:
        out = EndpointWithSecret(**out.model_dump(), secret=secret)
    return out.model_dump(mode="json")


def _delivery_out(delivery: WebhookDelivery, blocker: WebhookDelivery | None) -> dict[str, Any]:
    fields = {
        name: getattr(delivery, name) for name in DeliveryOut.model_fields.keys() - {"waiting_on"}
    }
    fields["waiting_on"] = None
    if blocker is not None:
        # Its own `next_attempt_at` means nothing while it waits: the blocker's is the news.
        fields["next_attempt_at"] = None
        fields["waiting_on"] = WaitingOn(
            delivery_id=blocker.id,
            event_type=blocker.event_type,
            attempts=blocker.attempts,
            next_attempt_at=blocker.next_attempt_at,
        )
    return DeliveryOut.model_validate(fields).model_dump(mode="json")


def _deliveries_out(session: Session, rows: list[WebhookDelivery]) -> list[dict[str, Any]]:
    blockers = service.waiting(session, deliveries=rows)
    return [_delivery_out(d, blockers.get(d.id)) for d in rows]


@router.post(
    ENDPOINTS,
    status_code=201,
    response_model=EndpointWithSecret,
    responses=problems(Answer(409, "The client has as many endpoints as it may")),
)
def create_endpoint(
    body: EndpointCreate, session: SessionDep, client: RequestsWriter, once: Idempotent
) -> JSONResponse:
    def call() -> dict[str, Any]:
        endpoint, secret = service.create_endpoint(
            session, client=client, url=str(body.url), events=body.events, ordering=body.ordering
        )
        return _endpoint_out(endpoint, secret=secret)

    return once.run(201, call, body=body)


@router.get(ENDPOINTS, response_model=list[EndpointOut])
def list_endpoints(session: SessionDep, client: RequestsReader) -> list[dict[str, Any]]:
    return [_endpoint_out(e) for e in service.list_endpoints(session, client=client)]


@router.get(ENDPOINTS + "/{endpoint_id}", response_model=EndpointOut)
def get_endpoint(
    endpoint_id: uuid.UUID, session: SessionDep, client: RequestsReader
) -> dict[str, Any]:
    return _endpoint_out(service.get_endpoint(session, client=client, endpoint_id=endpoint_id))


@router.patch(ENDPOINTS + "/{endpoint_id}", response_model=EndpointOut)
def update_endpoint(
    endpoint_id: uuid.UUID, body: EndpointUpdate, session: SessionDep, client: RequestsWriter
) -> dict[str, Any]:
    """Change the endpoint's `ordering`."""
    endpoint = service.set_ordering(
        session, client=client, endpoint_id=endpoint_id, ordering=body.ordering
    )
    session.commit()
    return _endpoint_out(endpoint)


@router.delete(ENDPOINTS + "/{endpoint_id}", status_code=204)
def delete_endpoint(
    endpoint_id: uuid.UUID, session: SessionDep, client: RequestsWriter
) -> Response:
    service.delete_endpoint(session, client=client, endpoint_id=endpoint_id)
    session.commit()
    return Response(status_code=204)


@router.post(ENDPOINTS + "/{endpoint_id}/rotate-secret", response_model=EndpointWithSecret)
def rotate_secret(
    endpoint_id: uuid.UUID,
    session: SessionDep,
    client: RequestsWriter,
    once: Idempotent,
    body: RotateSecret | None = None,
) -> JSONResponse:
    rotation = body or RotateSecret()

    def call() -> dict[str, Any]:
        endpoint, secret = service.rotate_secret(
            session,
            client=client,
            endpoint_id=endpoint_id,
            overlap=timedelta(hours=rotation.overlap_hours),
        )
        return _endpoint_out(endpoint, secret=secret)

    return once.run(200, call, body=rotation)


@router.get(ENDPOINTS + "/{endpoint_id}/deliveries", response_model=DeliveryPage)
def endpoint_deliveries(
    endpoint_id: uuid.UUID,
    session: SessionDep,
    client: RequestsReader,
    status: DeliveryStatus | None = None,
    cursor: str | None = None,
    limit: Limit = DEFAULT_LIMIT,
) -> dict[str, Any]:
    rows, next_cursor = service.list_deliveries(
        session, client=client, endpoint_id=endpoint_id, status=status, cursor=cursor, limit=limit
    )
    return {"items": _deliveries_out(session, rows), "next_cursor": next_cursor}


@router.post(
    ENDPOINTS + "/{endpoint_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=DeliveryOut,
    responses=NOT_REDELIVERABLE,
)
def redeliver_to_endpoint(
    endpoint_id: uuid.UUID,
    delivery_id: DeliveryId,
    session: SessionDep,
    client: RequestsWriter,
    once: Idempotent,
) -> JSONResponse:
    """Send the delivery now, with the same `webhook-id`, in a fresh round of attempts: a
    finished one again, a pending one at once instead of at `next_attempt_at` (one that waits
    for earlier deliveries of its request or model goes right after them, sent now too)."""

    def call() -> dict[str, Any]:
        delivery = service.redeliver(
            session, client=client, delivery_id=delivery_id, endpoint_id=endpoint_id
        )
        return _deliveries_out(session, [delivery])[0]

    return once.run(202, call)


@router.get("/v1/webhook-deliveries", response_model=DeliveryPage)
def all_deliveries(
    session: SessionDep,
    client: RequestsReader,
    erasure_request_id: uuid.UUID | None = None,
    status: DeliveryStatus | None = None,
    cursor: str | None = None,
    limit: Limit = DEFAULT_LIMIT,
) -> dict[str, Any]:
    """Every delivery of this client: endpoints, request callback URLs and OpenDSR callbacks."""
    rows, next_cursor = service.list_deliveries(
        session,
        client=client,
        erasure_request_id=erasure_request_id,
        status=status,
        cursor=cursor,
        limit=limit,
    )
    return {"items": _deliveries_out(session, rows), "next_cursor": next_cursor}


@router.post(
    "/v1/webhook-deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=DeliveryOut,
    responses=NOT_REDELIVERABLE,
)
def redeliver(
    delivery_id: DeliveryId, session: SessionDep, client: RequestsWriter, once: Idempotent
) -> JSONResponse:
    """Send the delivery now, with the same `webhook-id`, in a fresh round of attempts: a
    finished one again, a pending one at once instead of at `next_attempt_at` (one that waits
    for earlier deliveries of its request or model goes right after them, sent now too)."""

    def call() -> dict[str, Any]:
        delivery = service.redeliver(session, client=client, delivery_id=delivery_id)
        return _deliveries_out(session, [delivery])[0]

    return once.run(202, call)


@router.get("/v1/webhook-signing-key", response_model=SigningKeyOut)
def signing_key() -> SigningKeyOut:
    """The public key that verifies `v1a` signatures on deliveries to a request's
    `callback_url` (registered endpoints use their own `whsec_` secret instead)."""
    return SigningKeyOut(public_key=callback_public_key())
