"""The queue, a request's page with its live parts and actions, and its evidence."""

from __future__ import annotations

import contextlib
import uuid
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.core.db import SessionDep
from app.dashboard import actions as request_actions
from app.dashboard.actions import Action, ActionRefused
from app.dashboard.routes.common import page, see_other
from app.dashboard.security import ActingOfficer, DashboardError, FormData, SignedIn
from app.dashboard.sessions import Officer
from app.dashboard.templating import base_path, render
from app.dashboard.views import evidence as evidence_view
from app.dashboard.views import queue as queue_view
from app.dashboard.views import request as request_view
from app.erasure.enums import RequestStatus
from app.erasure.service import MAX_EXTENSION_MONTHS

router = APIRouter()

COUNT_LINKS = [
    ("open", "open"),
    ("pending_approval", "pending approval"),
    ("running", "running"),
    ("mitigated", "mitigated"),
    ("failed", "failed"),
    ("completed", "completed"),
    ("all", "all"),
]


@router.get("/")
def home(request: Request) -> RedirectResponse:
    return RedirectResponse(base_path(request) + "/requests", status_code=303)


def _filters(request: Request) -> queue_view.QueueFilters:
    """The queue's query parameters; anything unrecognised falls back to the default."""
    q = request.query_params
    status = q.get("status", queue_view.OPEN_FILTER)
    known = {queue_view.OPEN_FILTER, queue_view.ALL_FILTER, *(s.value for s in RequestStatus)}
    client_id = None
    with contextlib.suppress(ValueError):
        client_id = uuid.UUID(q["client"]) if q.get("client") else None
    page_number = q.get("page", "1")
    return queue_view.QueueFilters(
        status=status if status in known else queue_view.OPEN_FILTER,
        client_id=client_id,
        overdue={"yes": True, "no": False}.get(q.get("overdue", "")),
        search=q.get("q", "")[:200],
        page=int(page_number) if page_number.isdigit() and len(page_number) < 7 else 1,
    )


@router.get("/requests")
def queue(request: Request, session: SessionDep, officer: SignedIn) -> HTMLResponse:
    filters = _filters(request)
    result = queue_view.queue(session, filters=filters)

    def page_url(number: int) -> str:
        params = {k: v for k, v in request.query_params.items() if k != "page"}
        return f"{base_path(request)}/requests?{urlencode({**params, 'page': number})}"

    options = [("open", "Open (not closed)"), ("all", "All")] + [
        (s.value, s.value.replace("_", " ")) for s in RequestStatus
    ]
    return page(
        request,
        "queue.html",
        officer,
        filters=filters,
        result=result,
        counts=queue_view.status_counts(session),
        count_links=COUNT_LINKS,
        status_options=options,
        clients=queue_view.client_choices(session),
        page_url=page_url,
    )


def _view(session: SessionDep, request_id: uuid.UUID) -> request_view.RequestView:
    view = request_view.load(session, request_id=request_id)
    if view is None:
        raise DashboardError(404, "There is no erasure request with this id.")
    return view


def _request_page(
    request: Request,
    session: SessionDep,
    officer: Officer,
    request_id: uuid.UUID,
    *,
    status: int = 200,
    **context: object,
) -> HTMLResponse:
    view = _view(session, request_id)
    return page(
        request,
        "request.html",
        officer,
        status=status,
        view=view,
        actions=request_actions.allowed_actions(view.request),
        max_extension=MAX_EXTENSION_MONTHS,
        **context,
    )


@router.get("/requests/{request_id}")
def request_page(
    request_id: uuid.UUID, request: Request, session: SessionDep, officer: SignedIn
) -> HTMLResponse:
    return _request_page(request, session, officer, request_id)


@router.get("/requests/{request_id}/live")
def request_live(
    request_id: uuid.UUID, request: Request, session: SessionDep, officer: SignedIn
) -> HTMLResponse:
    """Status, jobs and timeline, re-fetched by the page every few seconds."""
    return render(request, "_request_live.html", {"view": _view(session, request_id)})


@router.get("/requests/{request_id}/actions")
def request_actions_fragment(
    request_id: uuid.UUID, request: Request, session: SessionDep, officer: SignedIn
) -> HTMLResponse:
    """The action forms, re-fetched when the status changes under the page."""
    view = _view(session, request_id)
    return render(
        request,
        "_request_actions.html",
        {
            "view": view,
            "officer": officer,
            "actions": request_actions.allowed_actions(view.request),
            "max_extension": MAX_EXTENSION_MONTHS,
            "field_errors": {},
            "form_values": {},
        },
    )


@router.post("/requests/{request_id}/{action}")
def act(
    request_id: uuid.UUID,
    action: Action,
    request: Request,
    session: SessionDep,
    officer: ActingOfficer,
    form: FormData,
) -> Response:
    """Approve, deny, extend, cancel or retry, as the officer's client (audited)."""
    try:
        request_actions.perform(
            session, officer=officer.client, request_id=request_id, action=action, form=form
        )
    except ActionRefused as refused:
        session.rollback()
        return _request_page(
            request,
            session,
            officer,
            request_id,
            status=refused.status,
            error=refused.message,
            field_errors=refused.fields,
            form_action=action.value,
            form_values={"reason": form.get("reason", "")},
        )
    session.commit()
    return see_other(request, f"/requests/{request_id}?done={action.value}")


@router.get("/requests/{request_id}/evidence")
def evidence(
    request_id: uuid.UUID, request: Request, session: SessionDep, officer: SignedIn
) -> HTMLResponse:
    view = _view(session, request_id)
    found = evidence_view.load(session, request_id=request_id)
    if found is None:
        raise DashboardError(
            404,
            f"The certificate is issued when the request completes; it is "
            f"{view.request.status.replace('_', ' ')}.",
        )
    return page(request, "evidence.html", officer, request_row=view.request, evidence=found)


@router.get("/requests/{request_id}/certificate.jws")
def certificate_download(request_id: uuid.UUID, session: SessionDep, officer: SignedIn) -> Response:
    found = evidence_view.certificate(session, request_id=request_id)
    if found is None:
        raise DashboardError(404, "This request has no certificate yet.")
    return Response(
        found.jws,
        media_type="application/jose",
        headers={
            "Content-Disposition": f'attachment; filename="lethe-certificate-{request_id}.jws"'
        },
    )
