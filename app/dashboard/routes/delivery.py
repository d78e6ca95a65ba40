"""Webhook endpoints, deliveries and redelivery; API clients, create and revoke."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.clients import service as clients_service
from app.core.db import SessionDep
from app.core.errors import ProblemError
from app.core.scopes import Scope
from app.dashboard.routes.common import page, see_other
from app.dashboard.security import ActingOfficer, DashboardError, FormData, SignedIn
from app.dashboard.sessions import Officer
from app.dashboard.views import delivery as delivery_view
from app.webhooks import service as webhooks_service
from app.webhooks.models import WebhookDelivery

router = APIRouter()

SCOPE_HELP = [
    (Scope.REQUESTS_WRITE.value, "submit and cancel erasure requests"),
    (Scope.REQUESTS_READ.value, "read its own requests and certificates"),
    (Scope.LINEAGE_WRITE.value, "register datasets and training records"),
    (Scope.MODELS_WRITE.value, "register, train and query models"),
    (Scope.DASHBOARD.value, "sign in here and view every page, read-only"),
    (Scope.ADMIN.value, "everything, including approvals and keys"),
]


@router.get("/webhooks")
def webhooks(request: Request, session: SessionDep, officer: SignedIn) -> HTMLResponse:
    overview = delivery_view.overview(session)
    endpoints = {e.endpoint.id: e.endpoint for e in overview.endpoints}

    def redeliverable(delivery: WebhookDelivery) -> bool:
        return delivery_view.redeliverable(delivery, endpoints)

    return page(request, "webhooks.html", officer, overview=overview, redeliverable=redeliverable)


@router.post("/webhooks/deliveries/{delivery_id}/redeliver")
def redeliver(
    delivery_id: int, request: Request, session: SessionDep, officer: ActingOfficer
) -> Response:
    if not 1 <= delivery_id < 2**63:
        raise DashboardError(404, "There is no such delivery.")
    try:
        webhooks_service.redeliver(session, client=officer.client, delivery_id=delivery_id)
    except ProblemError as exc:
        session.rollback()
        raise DashboardError(exc.status, exc.detail) from None
    session.commit()
    return see_other(request, "/webhooks?done=redeliver")


def _clients_page(
    request: Request, session: SessionDep, officer: Officer, *, status: int = 200, **context: object
) -> HTMLResponse:
    return page(
        request,
        "clients.html",
        officer,
        status=status,
        clients=delivery_view.clients(session),
        scope_help=SCOPE_HELP,
        **context,
    )


@router.get("/clients")
def clients(request: Request, session: SessionDep, officer: SignedIn) -> HTMLResponse:
    return _clients_page(request, session, officer)


@router.post("/clients")
def create_client(
    request: Request, session: SessionDep, officer: ActingOfficer, form: FormData
) -> HTMLResponse:
    """Answers with the page itself (no redirect): the new key is shown in this response only."""
    name = form.get("name", "").strip()
    scopes = [s for s, _ in SCOPE_HELP if form.get(f"scope:{s}")]
    errors = {}
    if not name or len(name) > 200:
        errors["name"] = "Give the client a name of at most 200 characters."
    if not scopes:
        errors["scopes"] = "Choose at least one scope."
    if errors:
        return _clients_page(
            request,
            session,
            officer,
            status=422,
            field_errors=errors,
            form_values=form,
            error="The client was not created; check the highlighted fields.",
        )
    issued = clients_service.create(
        session,
        actor=officer.client.actor,
        name=name,
        scopes=scopes,
        requires_approval=bool(form.get("requires_approval")),
    )
    session.commit()
    return _clients_page(request, session, officer, status=201, issued=issued)


@router.post("/clients/{client_id}/revoke")
def revoke_client(
    client_id: uuid.UUID, request: Request, session: SessionDep, officer: ActingOfficer
) -> Response:
    try:
        clients_service.revoke(session, actor=officer.client.actor, client_id=client_id)
    except ProblemError as exc:
        session.rollback()
        return _clients_page(request, session, officer, status=exc.status, error=exc.detail)
    session.commit()
    return see_other(request, "/clients?done=revoke")
